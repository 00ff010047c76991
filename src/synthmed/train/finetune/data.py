"""Training data of a fine-tuning run: RGB images, their captions, and latents encoded once.

**Grayscale -> RGB happens here and only here** (:func:`to_model_channels`): pretrained
SD / SDXL / Kandinsky autoencoders take 3-channel images in [-1, 1], so a 1-channel scan
is repeated into three identical channels (no colour map, no normalisation change: a
grey level ``v`` becomes ``(v, v, v)``). Generated images come back as RGB; averaging the
channels (or taking any one) recovers the grayscale scan.

Latent caching: the frozen VAE encodes every training image once per run (and once more
flipped when ``random_flip`` is on: the augmentation does not depend on the epoch, so its
two variants are cached). Each step samples ``z = mean + std * eps`` from the cached
posterior, exactly what encoding the image again would draw, without the VAE cost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from synthmed.errors import DataError
from synthmed.train.ldm.data import TrainingData, latent_cache_is_current, load_training_data
from synthmed.utils.tmpfiles import save_safetensors

logger = logging.getLogger(__name__)


def to_model_channels(images: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """The one grayscale -> RGB conversion of synthmed's fine-tuning trainers.

    Args:
        images: (N, C, H, W) float in [-1, 1], C = 1 (grayscale) or 3 (colour).
        channels: What the pretrained autoencoder takes (3 for SD, SDXL, Kandinsky).

    Returns:
        (N, channels, H, W) float in [-1, 1]; a grayscale image is repeated on every channel.
    """
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1:
        return images.repeat(1, channels, 1, 1)
    raise DataError(f"cannot feed {c}-channel images to a model that takes {channels} channels")


@dataclass
class FinetuneData:
    """RGB training images with their captions and rows' labels."""

    images: torch.Tensor  # (N, 3, H, W) in [-1, 1]
    captions: list[list[str]]
    labels: list[str | None]
    source: TrainingData

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_finetune_data(root: str | Path, *, resolution: int, split: str | None,
                       use_paraphrases: bool) -> FinetuneData:
    """Read a captioned dataset directory (checked before any model loads) as RGB tensors.

    Raises:
        DataError: missing/empty dataset, uncaptioned rows, or an empty split.
    """
    from synthmed.data.dataset import ImageDataset

    data = load_training_data(root, resolution=resolution, split=split, use_paraphrases=use_paraphrases)
    by_name = {r.file_name: r for r in ImageDataset(root).records}
    labels = [by_name[n].label for n in data.names]
    return FinetuneData(images=to_model_channels(data.images), captions=data.captions, labels=labels, source=data)


@dataclass
class LatentCache:
    """Posterior of every training image (and of its mirror image).

    Attributes:
        mean, std: (V, N, c, h, w) float32; V = 2 with flips (index 1 = flipped), else 1.
        scaling_factor: Multiplies sampled latents (the VAE's config).
        shift_factor: Subtracted before scaling (0 for SD / SDXL).
    """

    mean: torch.Tensor
    std: torch.Tensor
    scaling_factor: float
    shift_factor: float = 0.0

    def sample(self, idx: torch.Tensor, variant: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, c, h, w) scaled latents z0 drawn from the cached posteriors of items ``idx``."""
        mean, std = self.mean[variant, idx], self.std[variant, idx]
        eps = torch.randn(mean.shape, generator=generator)
        return (mean + std * eps - self.shift_factor) * self.scaling_factor


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, *, flip: bool, device: torch.device,
                   batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of ``images`` (and of their mirror images) through a frozen VAE.

    Args:
        vae: A diffusers ``AutoencoderKL`` (run in float32 whatever its storage dtype).
        images: (N, 3, H, W) in [-1, 1].

    Returns:
        mean, std: (V, N, c, h, w) float32 on the CPU.
    """
    dtype = next(vae.parameters()).dtype
    vae.to(device=device, dtype=torch.float32)
    variants = [images] + ([images.flip(-1)] if flip else [])
    means, stds = [], []
    for imgs in variants:
        m, s = [], []
        for start in range(0, len(imgs), batch_size):
            enc = vae.encode(imgs[start:start + batch_size].to(device))
            if hasattr(enc, "latent_dist"):  # AutoencoderKL: a Gaussian posterior
                m.append(enc.latent_dist.mean.float().cpu())
                s.append(enc.latent_dist.std.float().cpu())
            else:  # VQModel (Kandinsky's movq): deterministic pre-quantisation latents
                m.append(enc.latents.float().cpu())
                s.append(torch.zeros_like(m[-1]))
        means.append(torch.cat(m))
        stds.append(torch.cat(s))
    vae.to(dtype=dtype)
    return torch.stack(means), torch.stack(stds)


def cached_latents(vae, images: torch.Tensor, *, path: Path, digest: str, flip: bool, device: torch.device,
                   is_main: bool, wait, scaling_factor: float | None = None) -> LatentCache:
    """Load the latent cache at ``path`` if it was made for ``digest``, else encode and write it.

    The main process encodes; every process then reads the file (``wait`` is the barrier).
    ``scaling_factor`` None takes the VAE's config value.
    """
    if is_main:
        if not latent_cache_is_current(path, digest):
            t0 = time.monotonic()
            mean, std = encode_latents(vae, images, flip=flip, device=device)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            save_safetensors({"mean": mean.contiguous(), "std": std.contiguous()}, str(tmp),
                             metadata={"digest": digest})
            tmp.replace(path)
            logger.info("cached %d x %d latents %s in %.1f s", mean.shape[0], mean.shape[1], tuple(mean.shape[2:]),
                        time.monotonic() - t0)
        else:
            logger.info("latent cache %s is up to date", path)
    wait()
    with safe_open(str(path), framework="pt") as fh:
        mean, std = fh.get_tensor("mean"), fh.get_tensor("std")
    cfg = vae.config
    shift = getattr(cfg, "shift_factor", None) or 0.0
    scale = float(cfg.scaling_factor) if scaling_factor is None else scaling_factor
    return LatentCache(mean=mean, std=std, scaling_factor=scale, shift_factor=float(shift))
