"""Lesion masks drawn from the phantom's tumour model for requested findings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthmed.caption.brain_geometry import lesion_shape
from synthmed.data.imageio import load_lesion_mask, save_png_atomic
from synthmed.data.phantom.anatomy import FIELD_OF_VIEW_MM
from synthmed.data.phantom.masks import lesion_layout, lesion_mask_for
from synthmed.errors import ConfigError, DataError
from synthmed.findings.schema import BrainMRIFindings, size_category_for

SIZE = 128
SPACING = FIELD_OF_VIEW_MM / SIZE


@pytest.mark.parametrize("hemisphere", ["left", "right"])
@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_requested_side_and_size_inside_the_brain(hemisphere, size):
    for seed in range(3):
        f = BrainMRIFindings(tumor_present=True, hemisphere=hemisphere, size_category=size, shape="oval",
                             orientation="vertical")
        layout = lesion_layout(f, size=SIZE, seed=seed)
        lesion = layout.lesion
        assert lesion.any() and not (lesion & ~layout.brain).any()
        assert ndimage.label(lesion)[1] == 1
        # Radiological convention: the patient's left is on the image's right.
        col = np.flatnonzero(lesion.any(axis=0)).mean()
        brain_mid = np.flatnonzero(layout.brain.any(axis=0)).mean()
        assert (col > brain_mid) == (hemisphere == "left")
        # The drawn outline's largest diameter is the requested category (pixel grid tolerance).
        feret_mm = lesion_shape(lesion).max_feret_px * SPACING
        assert size_category_for(layout.size_mm) == size
        assert abs(feret_mm - layout.size_mm) < 2.5 * SPACING, (feret_mm, layout.size_mm)
        # Vertical: the long axis runs up-down.
        rows = np.flatnonzero(lesion.any(axis=1))
        cols = np.flatnonzero(lesion.any(axis=0))
        assert np.ptp(rows) > np.ptp(cols)


def test_lobe_exact_size_same_seed_and_healthy():
    f = BrainMRIFindings(tumor_present=True, lobe="occipital", size_mm=30.0)
    a, b = lesion_layout(f, size=SIZE, seed=3), lesion_layout(f, size=SIZE, seed=3)
    assert a.lobe == "occipital" and a.size_mm == 30.0
    assert np.array_equal(a.lesion, b.lesion) and np.array_equal(a.brain, b.brain)
    assert not np.array_equal(a.lesion, lesion_mask_for(f, size=SIZE, seed=4))
    healthy = lesion_layout(BrainMRIFindings(tumor_present=False), size=SIZE, seed=0)
    assert not healthy.lesion.any() and healthy.brain.sum() > 1000


def test_a_lesion_that_cannot_fit_is_a_clear_error():
    f = BrainMRIFindings(tumor_present=True, lobe="temporal", size_mm=150.0)
    with pytest.raises(ConfigError, match="cannot place a lesion"):
        lesion_mask_for(f, size=64, seed=0)


def test_lesion_mask_files_are_checked(tmp_path):
    path = tmp_path / "m.png"
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    save_png_atomic(path, mask)
    assert load_lesion_mask(path, shape=(16, 16)).sum() == 16
    with pytest.raises(DataError, match="16x16 px but its image is 32x32") as err:
        load_lesion_mask(path, shape=(32, 32))
    assert "m.png" in str(err.value)
    save_png_atomic(path, (mask // 2) + (np.arange(16)[None, :] % 2).astype(np.uint8))
    with pytest.raises(DataError, match="not a binary mask"):
        load_lesion_mask(path)
    save_png_atomic(path, 255 - mask)
    with pytest.raises(DataError, match="inverted"):
        load_lesion_mask(path)
