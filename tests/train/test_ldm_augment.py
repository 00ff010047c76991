"""Brightness/contrast augmentation of the UNet's training images (MSDM): cached copies, no flips."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from synthmed.testing.ldm import tiny_train_config
from synthmed.train.ldm import train_ldm
from synthmed.train.ldm.augment import IntensityAugment, augmented_copies


def _images(n: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n, 1, 16, 16), generator=g) * 2 - 1
    x[:, :, :4] = -1.0  # a black background band
    x[:, :, -2:] = 1.0  # and saturated white
    return x


def test_copies_keep_the_original_black_and_the_geometry():
    images = _images()
    cfg = IntensityAugment(brightness=0.2, contrast=0.3, copies=3)
    out = augmented_copies(images, cfg, seed=7)
    assert out.shape == (15, 1, 16, 16) and torch.equal(out[:5], images)
    copies = out[5:].reshape(2, 5, 1, 16, 16)
    assert (copies[:, :, :, :4] == -1.0).all()  # black stays black: no grey background
    assert out.min() >= -1.0 and out.max() <= 1.0
    # Each copy is one monotone map of its image: the pixel order (the anatomy) is unchanged.
    for k in range(2):
        for i in range(5):
            src, dst = images[i].ravel(), copies[k, i].ravel()
            order = torch.argsort(src)
            assert (torch.diff(dst[order]) >= -1e-6).all()
    white = (copies[:, :, :, -2:] + 1) / 2  # a white pixel becomes the gain, clipped to 1
    assert white.min() >= 0.8 - 1e-6 and not torch.allclose(copies, images.expand(2, -1, -1, -1, -1))


def test_copies_are_seeded():
    images, cfg = _images(), IntensityAugment()
    assert torch.equal(augmented_copies(images, cfg, seed=1), augmented_copies(images, cfg, seed=1))
    assert not torch.equal(augmented_copies(images, cfg, seed=1), augmented_copies(images, cfg, seed=2))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="copies"):
        IntensityAugment(copies=1)
    with pytest.raises(ValueError, match="brightness"):
        IntensityAugment(brightness=1.5)


def test_the_unet_trains_on_every_copy(disc_data, tiny_text_encoder, tmp_path):
    cfg = tiny_train_config(disc_data, tmp_path / "m", tiny_text_encoder, tensorboard=False,
                            unet={"augment": {"copies": 3}})
    train_ldm(cfg)
    with safe_open(str(tmp_path / "m" / "cache" / "latents.safetensors"), framework="pt") as fh:
        n_latents = fh.get_slice("mean").get_shape()[0]
    record = json.loads((tmp_path / "m" / "synthmed.json").read_text())
    assert n_latents == 3 * record["data"]["rows"]
    assert record["config"]["unet"]["augment"] == {"brightness": 0.1, "contrast": 0.1, "copies": 3}
