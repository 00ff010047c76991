"""Generation extras of seed 002: interpolation, composition and inpainting on a (fine-tuned) base.

* **Interpolation** (seed 002 figure 2, healthy -> diseased): the two prompts (which may hold
  learned tokens such as ``<healthy>`` / ``<tumour>``) are encoded by the pipeline's own text
  encoder(s), their token states (and SDXL's pooled embedding) are mixed linearly,
  ``e(w) = (1 - w) e_from + w e_to``, and every point is sampled from the same initial noise,
  so only the conditioning changes along the row.
* **Composition** (figure 3): several learned concepts in one prompt
  (``"... <glioma> with <edema>"``); it needs nothing but loading all their embeddings,
  which ``synthmed generate --embedding A --embedding B`` does.
* **Inpainting** (figure 4): a lesion is drawn inside a mask on a given (healthy) image with
  the base's inpainting pipeline (diffusers' ``AutoPipelineForInpainting.from_pipe``: an SD /
  SDXL text-to-image UNet blends the known region back at every step; a dedicated 9-channel
  inpainting UNet is used when the base is one). The mask is stored as the row's lesion mask.

Each writes a dataset directory whose rows carry the prompt, seed and what was mixed / masked.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from synthmed.data.dataset import DatasetWriter
from synthmed.data.imageio import load_image, load_mask
from synthmed.errors import ConfigError, DataError
from synthmed.generate.pipeline import load_pipeline, model_id
from synthmed.generate.run import _to_array
from synthmed.utils.device import resolve_device
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.provenance import provenance, write_json_atomic

logger = logging.getLogger(__name__)


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    prior: str | None = None
    out: Path
    loras: list[str] = Field(default_factory=list)
    lora_scale: float = 1.0
    embeddings: list[str] = Field(default_factory=list)
    steps: int = Field(25, ge=1)
    guidance_scale: float = Field(5.0, ge=0)
    scheduler: str = "dpm-solver++"
    negative_prompt: str | None = None
    seed: int = 0
    height: int | None = Field(None, ge=8)
    width: int | None = Field(None, ge=8)
    bits: int = Field(8)
    device: str = "auto"


class InterpolationConfig(_Common):
    """A row of images from ``prompt_from`` (weight 0) to ``prompt_to`` (weight 1)."""

    prompt_from: str
    prompt_to: str
    num_points: int = Field(5, ge=2)


class InpaintConfig(_Common):
    """A finding painted into each mask on one image.

    Attributes:
        image: The (healthy) image to paint into (any readable PNG; grayscale becomes RGB).
        masks: One mask PNG per output (white = repaint); same size as the image.
        strength: 1.0 repaints the masked region from pure noise.
    """

    prompt: str
    image: Path
    masks: list[Path] = Field(min_length=1)
    strength: float = Field(1.0, gt=0, le=1)


def _encode(pipe, prompts: list[str], device) -> dict[str, torch.Tensor]:
    """The pipeline's own prompt encoding, as keyword arguments it accepts back."""
    negative = [""] * len(prompts)
    if hasattr(pipe, "text_encoder_2"):  # SDXL: token states and pooled embeddings
        pe, npe, pooled, npooled = pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1,
                                                      do_classifier_free_guidance=True, negative_prompt=negative)
        return {"prompt_embeds": pe, "negative_prompt_embeds": npe, "pooled_prompt_embeds": pooled,
                "negative_pooled_prompt_embeds": npooled}
    pe, npe = pipe.encode_prompt(prompts, device, 1, True, negative_prompt=negative)
    return {"prompt_embeds": pe, "negative_prompt_embeds": npe}


def mix_conditioning(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], w: float) -> dict[str, torch.Tensor]:
    """Linear mix ``(1 - w) a + w b`` of every positive conditioning tensor (negatives stay ``a``'s)."""
    return {k: torch.lerp(a[k], b[k], w) if not k.startswith("negative") else a[k] for k in a}


def _writer_and_pipe(cfg: _Common, *, inpaint: bool = False):
    from synthmed.models.ldm import is_mask_conditioned_model

    if is_mask_conditioned_model(cfg.model):
        raise ConfigError(f"--model {cfg.model!r} is mask-conditioned (train ldm --condition mask[+head]): it paints "
                          "lesions into given masks; use synthmed generate --masks or --masks-from-findings")
    device = resolve_device(cfg.device)
    pipe = load_pipeline(cfg.model, scheduler=cfg.scheduler, loras=cfg.loras, lora_scale=cfg.lora_scale,
                         embeddings=cfg.embeddings, device=device, prior=cfg.prior)
    if inpaint:
        from diffusers import AutoPipelineForInpainting

        try:
            pipe = AutoPipelineForInpainting.from_pipe(pipe)
        except (ValueError, KeyError) as err:
            raise ConfigError(f"--model {cfg.model!r}: no inpainting pipeline for {type(pipe).__name__} ({err})") \
                from err
        pipe.set_progress_bar_config(disable=True)
    return DatasetWriter(cfg.out), pipe, device


@writes_to(first_argument("cfg", "out"))
def interpolate(cfg: InterpolationConfig) -> Path:
    """Generate ``num_points`` images along the line between two prompts' conditionings.

    Returns:
        ``cfg.out``: rows ``interp_{i}.png`` with ``interpolation_weight``, ``prompt_from``, ``prompt_to``.
    """
    writer, pipe, device = _writer_and_pipe(cfg)
    a, b = _encode(pipe, [cfg.prompt_from], device), _encode(pipe, [cfg.prompt_to], device)
    weights = np.linspace(0.0, 1.0, cfg.num_points).tolist()
    mid = model_id(cfg.model)
    size = {k: v for k, v in (("height", cfg.height), ("width", cfg.width)) if v is not None}
    for i, w in enumerate(weights):
        name = f"interp_{i:03d}.png"
        if writer.has(name):
            continue
        image = pipe(**mix_conditioning(a, b, w), num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                     generator=torch.Generator("cpu").manual_seed(cfg.seed), output_type="np", **size).images[0]
        text = cfg.prompt_from if w < 0.5 else cfg.prompt_to
        writer.add(name, _to_array(np.asarray(image), cfg.bits), text=text, prompt=text, seed=cfg.seed,
                   steps=cfg.steps, guidance_scale=cfg.guidance_scale, scheduler=cfg.scheduler, model_id=mid,
                   source=f"generated:{mid}", interpolation_weight=w, prompt_from=cfg.prompt_from,
                   prompt_to=cfg.prompt_to)
    write_json_atomic(cfg.out / "synthmed.json", provenance(kind="interpolation", config=cfg.model_dump(mode="json"),
                                                           weights=weights))
    return Path(cfg.out)


def _rgb01(path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from any readable image (grayscale repeated on three channels)."""
    img = load_image(path)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    img = img.astype(np.float32) / scale
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


@writes_to(first_argument("cfg", "out"))
def inpaint(cfg: InpaintConfig) -> Path:
    """Paint ``cfg.prompt`` into each mask of ``cfg.masks`` on ``cfg.image``; one output per mask.

    Raises:
        DataError: the image or a mask is unreadable, or a mask's size differs from the image's.
    """
    from PIL import Image

    base = _rgb01(cfg.image)
    masks = []
    for m in cfg.masks:
        mask = load_mask(m)
        if mask.shape != base.shape[:2]:
            raise DataError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image {cfg.image} is "
                            f"{base.shape[1]}x{base.shape[0]} (width x height)", m)
        if not mask.any():
            raise DataError("mask is empty (no white pixels to paint)", m)
        masks.append(mask)
    writer, pipe, device = _writer_and_pipe(cfg, inpaint=True)
    h, w = base.shape[:2]
    image = Image.fromarray((base * 255).round().astype(np.uint8))
    mid = model_id(cfg.model)
    for i, mask in enumerate(masks):
        name = f"inpaint_{i:03d}.png"
        if writer.has(name):
            continue
        out = pipe(prompt=cfg.prompt, image=image, mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
                   height=h, width=w, strength=cfg.strength, num_inference_steps=cfg.steps,
                   guidance_scale=cfg.guidance_scale, negative_prompt=cfg.negative_prompt,
                   generator=torch.Generator("cpu").manual_seed(cfg.seed), output_type="np").images[0]
        writer.add(name, _to_array(np.asarray(out), cfg.bits), mask=mask, text=cfg.prompt, prompt=cfg.prompt,
                   seed=cfg.seed, steps=cfg.steps, guidance_scale=cfg.guidance_scale, scheduler=cfg.scheduler,
                   model_id=mid, source=f"generated:{mid}", inpainted_into=str(cfg.image),
                   inpaint_mask=str(cfg.masks[i]), strength=cfg.strength)
    write_json_atomic(cfg.out / "synthmed.json", provenance(kind="inpainting", config=cfg.model_dump(mode="json")))
    return Path(cfg.out)
