"""Intensity augmentation of the UNet's training images (MSDM section 5.1.4: brightness and contrast).

No geometric transform: prompts name sides and lobes, so a flip would teach the wrong
side. Both transforms keep black black, so the background of an MRI slice stays empty:

* brightness: a gain ``g`` drawn uniformly from ``[1 - brightness, 1 + brightness]``;
* contrast: a gamma ``γ`` drawn log-uniformly from ``[1 / (1 + contrast), 1 + contrast]``;

``x' = clip(g · x^γ, 0, 1)`` on [0, 1] intensities. The UNet trains on cached latents, so
the augmented images are drawn once, seeded, as ``copies`` versions of every image (the
first one unchanged) and encoded with the others; each epoch then visits every version.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field

from synthmed.utils.seeding import derive_seed

_AUGMENT_STREAM = 103  # seed stream of the augmentation draws (derive_seed)


class IntensityAugment(BaseModel):
    """Brightness and contrast augmentation, as cached copies of the training images."""

    model_config = ConfigDict(extra="forbid")

    brightness: float = Field(0.1, ge=0, lt=1, description="gain drawn from [1 - b, 1 + b]")
    contrast: float = Field(0.1, ge=0, description="gamma drawn log-uniformly from [1 / (1 + c), 1 + c]")
    copies: int = Field(4, ge=2, le=32, description="versions of each image, the first one unchanged")


def augmented_copies(images: torch.Tensor, cfg: IntensityAugment, *, seed: int) -> torch.Tensor:
    """``cfg.copies`` versions of ``images`` ((N, C, H, W) in [-1, 1]), concatenated copy by copy.

    Row ``k * N + i`` is copy ``k`` of image ``i``; copy 0 is ``images`` itself. The draws
    depend only on ``seed`` and the image count, so the same data give the same copies.
    """
    n = images.shape[0]
    g = torch.Generator().manual_seed(derive_seed(seed, _AUGMENT_STREAM, n))
    shape = (cfg.copies - 1, n, 1, 1, 1)
    gain = 1.0 + cfg.brightness * (2.0 * torch.rand(shape, generator=g) - 1.0)
    log_gamma = math.log1p(cfg.contrast) * (2.0 * torch.rand(shape, generator=g) - 1.0)
    x01 = ((images + 1.0) / 2.0).clamp(0.0, 1.0).unsqueeze(0)
    changed = (gain * x01.pow(log_gamma.exp())).clamp(0.0, 1.0) * 2.0 - 1.0
    return torch.cat([images, *changed.to(images.dtype)], dim=0)
