"""Scanner-noise model: sigma measured from the background, fitted, stored, re-synthesised per seed."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data.noise import (
    NOISE_MODEL_FILE,
    RicianNoise,
    estimate_sigma,
    fit_noise_model,
    read_noise_model,
    write_noise_model,
)
from synthmed.errors import DataError


def _head(size: int = 128, sigma: float = 0.02, seed: int = 0, dark_tissue: bool = True) -> np.ndarray:
    """A bright ellipse (with a darker inner region) on air, with Rician noise of ``sigma``."""
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    s = np.where((x / 0.75) ** 2 + (y / 0.9) ** 2 < 1, 0.6, 0.0)
    if dark_tissue:  # ventricle-like: darker than tissue, brighter than air
        s = np.where(x ** 2 + y ** 2 < 0.04, 0.15, s)
    rng = np.random.default_rng(seed)
    return np.sqrt((s + rng.normal(0, sigma, s.shape)) ** 2 + rng.normal(0, sigma, s.shape) ** 2)


@pytest.mark.parametrize("sigma", [0.008, 0.02, 0.035])
def test_sigma_is_recovered_from_the_background(sigma):
    assert estimate_sigma(_head(sigma=sigma)) == pytest.approx(sigma, rel=0.05)


def test_phantom_noise_is_recovered():
    from synthmed.data.phantom.anatomy import apply_scanner

    class Head:  # what apply_scanner reads
        bias = (0.0, 0.0, 0.0, 0.0, 0.0)
        contrast, gamma, noise_sigma = 1.0, 1.0, 0.025

    noisy = apply_scanner(_head(sigma=0.0, dark_tissue=False).astype(np.float32), Head, np.random.default_rng(0))
    assert estimate_sigma(noisy) == pytest.approx(0.025, rel=0.05)


def test_no_background_gives_no_estimate():
    assert estimate_sigma(np.full((64, 64), 0.5)) is None
    assert fit_noise_model([np.full((64, 64), 0.5)] * 3) is None
    with pytest.raises(ValueError, match="grayscale"):
        estimate_sigma(np.zeros((8, 8, 3)))


def test_fit_apply_is_seeded_and_matches_the_fitted_sigma():
    model = fit_noise_model([_head(sigma=s, seed=i) for i, s in enumerate((0.01, 0.03))] + [np.full((32, 32), 0.5)])
    assert model.n_images == 3 and len(model.sigmas) == 2
    clean = np.where(_head(sigma=0.0) > 0, 0.6, 0.0)
    a, sa = model.apply(clean, seed=7)
    b, sb = model.apply(clean, seed=7)
    c, _ = model.apply(clean, seed=8)
    assert np.array_equal(a, b) and sa == sb and not np.array_equal(a, c)
    assert sa in model.sigmas and a.min() >= 0 and a.max() <= 1 and a.dtype == np.float32
    assert estimate_sigma(a) == pytest.approx(sa, rel=0.05)  # what was drawn is what a reader would measure
    drawn = {model.apply(clean[:8, :8], seed=s)[1] for s in range(40)}
    assert drawn == set(model.sigmas)  # every training image's sigma is drawn


def test_store_and_read_back(tmp_path):
    model = RicianNoise(sigmas=[0.01, 0.02], n_images=2)
    write_noise_model(tmp_path, model)
    assert read_noise_model(tmp_path) == model
    assert read_noise_model(tmp_path / "none") is None
    (tmp_path / NOISE_MODEL_FILE).write_text('{"kind": "rician", "sigmas": [], "n_images": 2}')
    with pytest.raises(DataError, match="sigmas") as err:
        read_noise_model(tmp_path)
    assert err.value.path == tmp_path / NOISE_MODEL_FILE
    (tmp_path / NOISE_MODEL_FILE).write_text("{not json")
    with pytest.raises(DataError, match="noise model"):
        read_noise_model(tmp_path)
