"""``train_controlnet``: a ControlNet that draws the lesion where a mask says, for SD 1.5 / SDXL / our LDM.

The ControlNet (Zhang et al. 2023) starts as a copy of the base UNet's encoder and middle
block (``ControlNetModel.from_unet``) with zero-initialised output convolutions, so training
starts from the base model's own images; it learns from each training image's caption and
lesion mask while the base stays frozen. The from-scratch LDM of ``synthmed train ldm`` is a
``StableDiffusionPipeline`` folder (grayscale autoencoder, small text encoder), so the same
trainer serves it.

**Conditioning image**: the lesion mask, white (1) on black (0), on all three channels, at the
image size: exactly what the mask PNGs of a synthmed dataset are, so vanilla diffusers takes
one directly::

    controlnet = ControlNetModel.from_pretrained(OUT)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(BASE, controlnet=controlnet)
    pipe(prompt, image=Image.open("masks/x.png").convert("RGB"))

An empty mask asks for a healthy slice. No flips: prompts name sides.

Output: ``OUT/config.json`` + ``OUT/diffusion_pytorch_model.safetensors`` (the ControlNet)
plus the shared layout of :mod:`synthmed.train.finetune.core`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import image_size, load_lesion_mask
from synthmed.errors import DataError
from synthmed.generate.pipeline import with_controlnet
from synthmed.train.finetune.components import check_base
from synthmed.train.finetune.config import FinetuneConfig, FinetuneOptimConfig
from synthmed.train.finetune.core import DenoiseTrainable, FinetuneRun, Validation, run_finetune, start, weight_dtype
from synthmed.train.finetune.data import FinetuneData, to_model_channels
from synthmed.train.finetune.families import get_family
from synthmed.train.finetune.lora import family_pipeline, load_frozen_parts
from synthmed.train.ldm.data import TrainingData, load_training_data
from synthmed.train.ldm.unet import choose_prompts, lesion_pixel_weights
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.tmpfiles import apply_umask

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
CONDITIONING = ("The lesion mask at the image size: lesion 1 (white), everything else 0 (black), the same on all "
                "three channels (a synthmed dataset's mask PNG, converted to RGB). An empty mask asks for a slice "
                "without a lesion.")


class ControlNetTrainConfig(FinetuneConfig):
    """``synthmed train controlnet``: a lesion-mask ControlNet on a frozen SD 1.5 / SDXL / LDM pipeline.

    Attributes:
        controlnet: Start from this trained ControlNet (folder or hub id) instead of a copy of the base UNet.
        conditioning_scale: Weight of the ControlNet's residuals in the validation grids.
        lesion_weight: Extra denoising-loss weight on the latent pixels a lesion covers, as
            ``synthmed train ldm``'s ``lesion_weight`` (lesions are a few percent of a slice).
        mask_encoder_init: ``zero`` (diffusers' ControlNet) or ``random`` for the last convolution of
            the mask encoder; with zero both it and the output convolutions start at zero and the
            mask reaches the network only once the latter have moved.
    """

    controlnet: str | None = None
    conditioning_scale: float = Field(1.0, ge=0)
    lesion_weight: float = Field(4.0, ge=0, description="extra loss weight on lesion pixels: the error there counts "
                                 "(1 + lesion_weight) times (the lesion is what the mask asks for); 0: plain MSE")
    mask_encoder_init: Literal["zero", "random"] = Field(
        "zero", description="the mask encoder's last convolution: zero (diffusers' ControlNet) or random, so the "
        "mask reaches the ControlNet from the first step (its zero output convolutions still leave the base "
        "model's images unchanged at the start)")
    optim: FinetuneOptimConfig = FinetuneOptimConfig(lr=1e-5, min_snr_gamma=None)


@dataclass
class ControlBatch:
    """Conditioning of one micro-batch: prompts and (B, 3, H, W) control images in [0, 1]."""

    prompts: list[str]
    images: torch.Tensor


class ControlNetTrainable(DenoiseTrainable):
    """Frozen base (text encoders, UNet) with a trainable ControlNet feeding the UNet's skip connections."""

    def __init__(self, family, unet, controlnet, text_encoders: list, tokenizers: list, resolution: int):
        super().__init__(family, unet, text_encoders, tokenizers, resolution, train_text=False)
        self.controlnet = controlnet

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, batch: ControlBatch) -> torch.Tensor:
        cond = self.condition(batch.prompts)
        cn_dtype = next(self.controlnet.parameters()).dtype
        unet_dtype = next(self.unet.parameters()).dtype

        def added(dtype):
            return {"added_cond_kwargs": {k: v.to(dtype) for k, v in cond.added.items()}} if cond.added else {}

        down, mid = self.controlnet(noisy.to(cn_dtype), timesteps,
                                    encoder_hidden_states=cond.hidden_states.to(cn_dtype),
                                    controlnet_cond=batch.images.to(noisy.device, cn_dtype), return_dict=False,
                                    **added(cn_dtype))
        return self.unet(noisy.to(unet_dtype), timesteps, encoder_hidden_states=cond.hidden_states.to(unet_dtype),
                         down_block_additional_residuals=[d.to(unet_dtype) for d in down],
                         mid_block_additional_residual=mid.to(unet_dtype), **added(unet_dtype)).sample


def control_images(masks: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) lesion masks in {0, 1} -> (B, 3, H, W) conditioning images (the documented layout)."""
    return masks.float().repeat(1, 3, 1, 1)


def controlnet_from_unet(unet, vae_downsample: int):
    """A ControlNet copied from ``unet`` whose mask encoder downsamples by ``vae_downsample`` (8 for SD).

    diffusers' ``from_unet`` leaves the pooled-text attention at 64 heads; a UNet with
    ``addition_embed_type="text"`` (our LDM's pooled text) gets its own head count back, so
    the copy computes what the UNet computes.
    """
    from diffusers import ControlNetModel

    levels = int(round(math.log2(vae_downsample)))
    if 2 ** levels != vae_downsample:
        raise ValueError(f"the autoencoder's downsampling {vae_downsample} is not a power of two")
    widths = tuple([16, 32, 96, 256, 256, 256][: levels + 1])
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=widths)
    heads = unet.config.get("addition_embed_type_num_heads")
    if unet.config.get("addition_embed_type") == "text" and heads and cn.config.addition_embed_type_num_heads != heads:
        state = cn.state_dict()
        config = {k: v for k, v in cn.config.items() if not k.startswith("_")}  # _use_default_values would win
        cn = ControlNetModel.from_config({**config, "addition_embed_type_num_heads": heads})
        cn.load_state_dict(state)
    return cn


def _checked_masks(root: Path, names: list[str]) -> None:
    """Every training row has a lesion mask the size of its image, binary, not inverted.

    Raises:
        DataError: naming the first row without a mask or the first bad mask file.
    """
    by_name = {r.file_name: r for r in ImageDataset(root).records}
    for name in names:
        rec = by_name[name]
        if rec.mask_file_name is None:
            raise DataError(f"row {name!r} has no mask_file_name: a ControlNet learns from image + lesion mask pairs "
                            "(an empty mask for a healthy image)", root / "metadata.jsonl")
        w, h = image_size(root / rec.file_name)
        load_lesion_mask(root / rec.mask_file_name, shape=(h, w))


def load_controlnet_data(cfg: ControlNetTrainConfig) -> tuple[TrainingData, torch.Tensor]:
    """Training images with captions (checked before any model loads) and their (N, 1, H, W) masks in {0, 1}.

    Raises:
        DataError: as :func:`load_training_data`, or a row without a good lesion mask (:func:`_checked_masks`).
    """
    data = load_training_data(cfg.data, resolution=cfg.resolution, split=cfg.split,
                              use_paraphrases=cfg.use_paraphrases)
    _checked_masks(Path(cfg.data), data.names)
    assert data.masks is not None  # every row has one (checked)
    return data, (data.masks > 0.5).float()  # resizing leaves soft edges; the condition is binary


def _validation_items(masks: torch.Tensor, n: int = 4) -> list[int]:
    """``n`` rows spread over the data, lesion rows first (the grid should show the control)."""
    lesion = [i for i in range(len(masks)) if masks[i].any()]
    pool = lesion if len(lesion) >= n else list(range(len(masks)))
    n = min(n, len(pool))
    return [pool[round(i * (len(pool) - 1) / max(1, n - 1))] for i in range(n)]


def build_controlnet_run(cfg: ControlNetTrainConfig, accelerator, family, source: TrainingData,
                         masks: torch.Tensor) -> FinetuneRun:
    """Load the frozen base and the ControlNet, and describe the run for :func:`run_finetune`."""
    from diffusers import ControlNetModel

    dtype = weight_dtype(accelerator.mixed_precision)
    vae, unet, text_encoders, tokenizers, noise_scheduler = load_frozen_parts(cfg.base, family, dtype)
    data = FinetuneData(images=to_model_channels(source.images, vae.config.in_channels), captions=source.captions,
                        labels=[None] * len(source), source=source)
    downsample = 2 ** (len(vae.config.block_out_channels) - 1)
    if cfg.resolution % downsample:
        raise DataError(f"resolution {cfg.resolution} is not a multiple of the autoencoder's downsampling {downsample}")
    torch.manual_seed(cfg.seed)  # the mask encoder's initial weights
    if cfg.controlnet is not None:
        controlnet = ControlNetModel.from_pretrained(cfg.controlnet, torch_dtype=torch.float32)
    else:
        controlnet = controlnet_from_unet(unet.float(), downsample)
        unet.to(dtype=dtype)
        if cfg.mask_encoder_init == "random":
            controlnet.controlnet_cond_embedding.conv_out.reset_parameters()
    controlnet.train().requires_grad_(True)
    if cfg.optim.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
    for m in [unet, controlnet, *text_encoders]:
        m.to(accelerator.device)
    trainable = ControlNetTrainable(family, unet, controlnet, text_encoders, tokenizers, cfg.resolution)

    def prompts_fn(items: torch.Tensor, g: torch.Generator) -> ControlBatch:
        return ControlBatch(choose_prompts(data.captions, items, cfg.caption_dropout, g), control_images(masks[items]))

    idx = _validation_items(masks)
    prompts = list(cfg.validation_prompts) or [data.captions[i][0] for i in idx]
    shown = [idx[k % len(idx)] for k in range(len(prompts))]
    control = control_images(masks[shown])
    validation = Validation(
        prompts=prompts, real=data.images[shown], steps=cfg.validation_steps,
        guidance_scale=cfg.validation_guidance_scale, resolution=cfg.resolution, seed=cfg.seed,
        pipe_kwargs={"image": control, "controlnet_conditioning_scale": cfg.conditioning_scale},
        top_row=control.permute(0, 2, 3, 1).numpy(),
        make_pipeline=lambda: with_controlnet(family_pipeline(family, cfg.base, vae=vae, unet=unet,
                                                              text_encoders=text_encoders, tokenizers=tokenizers),
                                              controlnet).to(accelerator.device))

    def export(module: ControlNetTrainable, result) -> dict:
        net = accelerator.unwrap_model(module).controlnet
        net.save_pretrained(cfg.out, safe_serialization=True)
        apply_umask(cfg.out)
        size = (cfg.out / WEIGHTS_FILE).stat().st_size
        logger.info("ControlNet: %s (%.1f MB)", cfg.out / WEIGHTS_FILE, size / 1e6)
        n_lesion = int(masks.flatten(1).any(1).sum())
        return {"weights_file": WEIGHTS_FILE, "weights_bytes": size, "conditioning": CONDITIONING,
                "rows_with_lesion": n_lesion, "rows_without_lesion": len(masks) - n_lesion}

    weights = None
    if cfg.lesion_weight > 0:
        weights = lesion_pixel_weights(masks, (cfg.resolution // downsample,) * 2, cfg.lesion_weight)
    return FinetuneRun(name="controlnet", trainable=trainable, vae=vae, noise_scheduler=noise_scheduler, data=data,
                       item_rows=torch.arange(len(data)), prompts_fn=prompts_fn, export=export, validation=validation,
                       pixel_weights=weights)


@writes_to(first_argument("config", "out"))
def train_controlnet(config: ControlNetTrainConfig) -> Path:
    """Train a lesion-mask ControlNet for a frozen SD 1.5 / SDXL / LDM pipeline.

    Returns:
        ``config.out``: ``ControlNetModel.from_pretrained(out)`` loads it, and the base's
        ControlNet pipeline (``StableDiffusionControlNetPipeline`` / ``StableDiffusionXLControlNetPipeline``)
        draws with it.

    Raises:
        DataError: the dataset is missing, uncaptioned, or a row lacks a good lesion mask (named).
        ConfigError: bad base / family / output directory.
        TrainingError: the loss became NaN or infinite.
    """
    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    # Inputs first: a bad dataset or base fails before any model is loaded.
    source, masks = load_controlnet_data(cfg)
    check_base(cfg.base)
    family = get_family(cfg.family, cfg.base)
    accelerator, data_hash = start(cfg, owned=("config.json", WEIGHTS_FILE))
    run = build_controlnet_run(cfg, accelerator, family, source, masks)
    run_finetune(accelerator, cfg, run, data_hash=data_hash, extra={"base": cfg.base, "family": family.name})
    return cfg.out

