"""Scanner noise of magnitude MR images: estimated on real images, re-synthesised on generated ones.

A magnitude MR image is ``|S + n1 + i n2|`` with ``n1, n2 ~ N(0, sigma^2)`` per pixel: Rician
noise (Gudbjartsson & Patz 1995). That noise is independent from pixel to pixel, so no latent
autoencoder can carry it (it is incompressible), and a latent diffusion model's images come
out noise-free, smoother than any scan. Video codecs meet the same problem with film grain
and solve it the same way (AV1's film-grain synthesis): remove it, send its parameters,
draw fresh grain at the decoder. Here:

1. :func:`estimate_sigma` measures sigma on one image from its air background, where the
   signal is zero and the magnitude is Rayleigh-distributed: ``E[M^2] = 2 sigma^2``;
2. :func:`fit_noise_model` collects the estimates of the training images into a
   :class:`RicianNoise` model, stored beside the trained model (:data:`NOISE_MODEL_FILE`);
3. :meth:`RicianNoise.apply` draws one training image's sigma and fresh Rician noise onto a
   generated image, from that image's seed, so the same seed gives the same pixels.

Intensities are in [0, 1] (8-bit / 255, 16-bit / 65535).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthmed.errors import DataError
from synthmed.utils.configs import format_validation_error
from synthmed.utils.provenance import write_json_atomic
from synthmed.utils.seeding import derive_seed

logger = logging.getLogger(__name__)

NOISE_MODEL_FILE = "noise_model.json"
#: Pixels whose local mean (5x5 box) is below this, in [0, 1] units, are background candidates.
BACKGROUND_LEVEL = 0.1
#: An image needs at least this fraction of background pixels for an estimate.
MIN_BACKGROUND_FRACTION = 0.02
_NOISE_STREAM = 0x6E6F6973  # "nois": the random stream of re-synthesised noise, apart from the sampler's


def _box_mean(image: np.ndarray, k: int = 5) -> np.ndarray:
    """Mean over a k x k window (edges replicated), by cumulative sums."""
    pad = k // 2
    p = np.pad(image.astype(np.float64), pad, mode="edge")
    c = np.cumsum(np.cumsum(p, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = image.shape
    return (c[k:k + h, k:k + w] - c[:h, k:k + w] - c[k:k + h, :w] + c[:h, :w]) / (k * k)


def estimate_sigma(image01: np.ndarray, *, background_level: float = BACKGROUND_LEVEL,
                   min_fraction: float = MIN_BACKGROUND_FRACTION) -> float | None:
    """Rician sigma of one grayscale image from its background, or None when it has too little.

    Background: pixels whose 5x5 mean is below ``background_level``, then (second pass) below
    three times the Rayleigh mean ``sigma * sqrt(pi / 2)`` of the first estimate, which keeps
    dark tissue out. Over background pixels ``sigma^2 = mean(M^2) / 2``.
    """
    img = np.asarray(image01, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"estimate_sigma needs a grayscale image, got shape {img.shape}")
    smooth = _box_mean(img)
    sigma = None
    level = background_level
    for _ in range(2):
        mask = smooth < level
        if mask.mean() < min_fraction:
            return sigma
        sigma = float(np.sqrt((img[mask] ** 2).mean() / 2.0))
        level = min(background_level, 3.0 * sigma * np.sqrt(np.pi / 2.0))
    return sigma


class RicianNoise(BaseModel):
    """A fitted scanner-noise model: the sigmas measured on the training images.

    Attributes:
        sigmas: One estimate per training image that had enough background ([0, 1] units).
        n_images: Images looked at (some may have given no estimate).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rician"] = "rician"
    sigmas: list[float] = Field(min_length=1)
    n_images: int = Field(ge=1)
    estimator: str = "background (5x5 mean below threshold, two passes), sigma^2 = mean(M^2) / 2"

    def draw(self, seed: int) -> tuple[float, np.random.Generator]:
        """The sigma of an image with ``seed`` and the generator its noise comes from."""
        rng = np.random.default_rng(derive_seed(seed, _NOISE_STREAM))
        return float(self.sigmas[int(rng.integers(len(self.sigmas)))]), rng

    def apply(self, image01: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
        """``image01`` (H, W) or (H, W, 1) with fresh Rician noise, clipped to [0, 1], and its sigma."""
        sigma, rng = self.draw(seed)
        s = np.asarray(image01, dtype=np.float64)
        n1 = rng.normal(0.0, sigma, s.shape)
        n2 = rng.normal(0.0, sigma, s.shape)
        return np.clip(np.sqrt((s + n1) ** 2 + n2 ** 2), 0.0, 1.0).astype(np.float32), sigma

    def summary(self) -> dict[str, float]:
        a = np.asarray(self.sigmas)
        return {"n": len(a), "min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


def fit_noise_model(images01: Iterable[np.ndarray]) -> RicianNoise | None:
    """Estimate sigma on each grayscale image; None when no image has enough background."""
    sigmas, n = [], 0
    for img in images01:
        n += 1
        s = estimate_sigma(img)
        if s is not None:
            sigmas.append(round(s, 6))
    if not sigmas:
        logger.warning("no noise model: none of %d images has enough dark background to measure its noise", n)
        return None
    if len(sigmas) < n:
        logger.info("noise model: %d of %d images had enough background to measure", len(sigmas), n)
    return RicianNoise(sigmas=sigmas, n_images=n)


def write_noise_model(folder: str | Path, model: RicianNoise) -> Path:
    """Store ``model`` in ``folder`` (atomically) and return the file."""
    path = Path(folder) / NOISE_MODEL_FILE
    write_json_atomic(path, model.model_dump(mode="json"))
    return path


def read_noise_model(folder: str | Path) -> RicianNoise | None:
    """The noise model stored in a model folder, or None when it has none.

    Raises:
        DataError: the file exists but is not a valid noise model (names the file).
    """
    path = Path(folder) / NOISE_MODEL_FILE
    if not path.is_file():
        return None
    try:
        return RicianNoise.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        detail = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise DataError(f"not a valid noise model: {detail}", path) from exc
