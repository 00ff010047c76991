"""head_mask: the head outline of a slice, found by thresholding."""

from __future__ import annotations

import numpy as np

from synthmed.data.head_mask import head_mask
from synthmed.data.phantom.masks import lesion_layout
from synthmed.findings.schema import BrainMRIFindings
from synthmed.testing.ldm import disc_slice


def test_finds_the_toy_head_with_its_bright_lesion_and_ignores_noise_specks():
    img, lesion = disc_slice(64, "left", 6, np.random.default_rng(0))
    img = img.astype(np.float32) / 255
    img[2, 2] = 1.0  # a bright speck in the air is not the head
    head = head_mask(img)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    ellipse = ((xx - 32) / (0.42 * 64)) ** 2 + ((yy - 32) / (0.46 * 64)) ** 2 <= 1.0
    assert not head[2, 2] and head[lesion].all()
    assert (head != ellipse).mean() < 0.02


def test_fills_dark_holes_and_handles_colour_and_empty_images():
    img = np.zeros((40, 40), np.float32)
    img[5:35, 5:35] = 0.8
    img[15:25, 15:25] = 0.0  # a dark lesion or ventricle inside the head
    head = head_mask(img)
    assert head[20, 20] and head[6, 6] and not head[1, 1]
    assert np.array_equal(head_mask(np.stack([img] * 3, axis=-1)), head)
    assert not head_mask(np.zeros((8, 8))).any()


def test_a_drawn_layout_puts_its_lesion_inside_its_head():
    f = BrainMRIFindings(tumor_present=True, hemisphere="left", size_category="large")
    for seed in range(3):
        layout = lesion_layout(f, size=128, seed=seed)
        assert layout.head[layout.lesion].all() and layout.head[layout.brain].mean() > 0.99
        assert 0.3 < layout.head.mean() < 0.8
    healthy = lesion_layout(BrainMRIFindings(tumor_present=False), size=128, seed=0)
    assert healthy.head.any() and not healthy.lesion.any()
