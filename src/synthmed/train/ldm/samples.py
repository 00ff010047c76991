"""Sample grids during training: autoencoder reconstructions and text-to-image samples.

Samples go through the same diffusers pipeline users load afterwards, so a grid that
looks right also proves the saved model will.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from synthmed.data.imageio import quantize, save_png_atomic
from synthmed.models.ldm import assemble_pipeline, mask_pipeline_inputs
from synthmed.train.ldm.randomness import derive_seed, stage_key

logger = logging.getLogger(__name__)


def make_grid(rows: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Tile images into a grid.

    Args:
        rows: Each a (N, H, W, C) float array in [0, 1]; rows may have different N.
        pad: Pixels of black between tiles.

    Returns:
        (H', W') uint8 for C == 1, else (H', W', 3) uint8.
    """
    n = max(len(r) for r in rows)
    h, w, c = rows[0].shape[1:]
    grid = np.zeros((len(rows) * (h + pad) + pad, n * (w + pad) + pad, c), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = img
    out = quantize(grid)
    return out[..., 0] if c == 1 else out


def to_unit(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) float32 in [0, 1]."""
    return ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def reconstruction_grid(vae: torch.nn.Module, images: torch.Tensor, device: torch.device) -> tuple[np.ndarray, float]:
    """Real images (top) above their reconstructions through the posterior mean (bottom).

    Returns:
        The grid and the mean absolute error in [0, 1] units.
    """
    vae.eval()
    recon = vae.decode(vae.encode(images.to(device)).latent_dist.mean).sample.cpu()
    mae = float(((recon.clamp(-1, 1) - images).abs() / 2).mean())
    return make_grid([to_unit(images), to_unit(recon)]), mae


@torch.no_grad()
def text_to_image_grid(*, vae, unet, text_encoder, noise_scheduler, prompts: list[str], real: torch.Tensor | None,
                       steps: int, guidance_scale: float, seed: int,
                       conditions: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """Generate one image per prompt with DPM-Solver++ and tile them under the real images.

    Args:
        vae, unet: Trained networks (put in eval mode here).
        text_encoder: A :class:`synthmed.models.text_encoders.TextEncoder`.
        noise_scheduler: The training ``DDPMScheduler`` (its config seeds the sampler).
        prompts: One prompt per column.
        real: (N, C, H, W) in [-1, 1], the images those prompts describe, for the top row.
        conditions: (lesion masks, head masks), each (N, 1, H, W), of those images: the conditioning
            of a mask-conditioned UNet.
    """
    from diffusers import DPMSolverMultistepScheduler

    sampler = DPMSolverMultistepScheduler.from_config(noise_scheduler.config, algorithm_type="dpmsolver++")
    pipe = assemble_pipeline(vae=vae.eval(), unet=unet.eval(), text_encoder=text_encoder.model,
                             tokenizer=text_encoder.tokenizer, scheduler=sampler)
    pipe.set_progress_bar_config(disable=True)
    gens = [torch.Generator().manual_seed(derive_seed(seed, stage_key("samples"), i)) for i in range(len(prompts))]
    extra = {}
    if conditions is not None:
        lesions, heads = ([m[0].numpy() > 0.5 for m in masks] for masks in conditions)
        extra = mask_pipeline_inputs(lesions, heads, vae.config.in_channels)
    images = pipe(prompts, num_inference_steps=steps, guidance_scale=guidance_scale, generator=gens,
                  output_type="np", **extra).images
    rows = ([to_unit(real)] if real is not None else []) + [images]
    return make_grid(rows)


def save_grid(grid: np.ndarray, path: Path, accelerator, tag: str, step: int) -> None:
    """Write a grid PNG and log it to TensorBoard when a tracker is active."""
    save_png_atomic(path, grid)
    try:
        writer = accelerator.get_tracker("tensorboard", unwrap=True)
    except (ValueError, KeyError, AttributeError):
        writer = None
    if writer is not None and hasattr(writer, "add_image"):
        hwc = grid[..., None] if grid.ndim == 2 else grid
        writer.add_image(tag, hwc, global_step=step, dataformats="HWC")
        writer.flush()
    logger.info("sample grid: %s", path)
