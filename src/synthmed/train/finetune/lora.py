"""``train_lora``: LoRA on the UNet attention of SD 1.5 / SDXL, optionally on the text encoder(s).

Seed 000's setting (rank 128 or 248, trainable text encoder, min-SNR 5, cosine schedule)
is in ``configs/lora-sd15-seed000.yaml`` / ``configs/lora-sdxl-seed000.yaml``. diffusers'
SD 1.5 example script cannot train the text encoder; here the text encoders get their own
LoRA (peft) and are saved in the same file, so ``pipe.load_lora_weights(OUT)`` restores both.

Output: ``OUT/pytorch_lora_weights.safetensors`` (diffusers / kohya-compatible key layout,
adapter configs in the safetensors metadata) plus the shared layout of
:mod:`synthmed.train.finetune.core`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from synthmed.train.finetune.components import check_base, load_component, model_index
from synthmed.train.finetune.config import LoraTrainConfig
from synthmed.train.finetune.core import (
    DenoiseTrainable,
    FinetuneRun,
    Validation,
    run_finetune,
    start,
    weight_dtype,
)
from synthmed.train.finetune.data import FinetuneData, load_finetune_data
from synthmed.train.finetune.families import get_family
from synthmed.train.ldm.unet import choose_prompts
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.tmpfiles import apply_umask

logger = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"


def load_frozen_parts(base: str, family, dtype: torch.dtype):
    """VAE, UNet, text encoders, tokenizers and the noise scheduler of ``base``, all frozen."""
    from diffusers import DDPMScheduler

    index = model_index(base)
    vae = load_component(base, "vae", index)
    unet = load_component(base, "unet", index)
    text_encoders = [load_component(base, n, index) for n in family.text_encoders]
    tokenizers = [load_component(base, n, index) for n in family.tokenizers]
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    for m in [vae, unet, *text_encoders]:
        m.requires_grad_(False)
    if dtype != torch.float32:  # the VAE encodes once, in full precision
        for m in [unet, *text_encoders]:
            m.to(dtype=dtype)
    return vae, unet, text_encoders, tokenizers, scheduler


def add_lora(unet, text_encoders: list, cfg: LoraTrainConfig) -> None:
    """Insert peft LoRA layers (trainable, float32) into the UNet and, if asked, the text encoders.

    The text encoders get their layers from peft itself, not from transformers' ``add_adapter``:
    that method refuses to run unless peft is at least the version transformers names (transformers
    5.24 asks for a peft release that does not exist yet), while the injected layers are the same.
    """
    from diffusers.training_utils import cast_training_params
    from peft import inject_adapter_in_model

    unet.add_adapter(cfg.lora.peft_config())
    models = [unet]
    if cfg.train_text_encoder:
        for te in text_encoders:
            inject_adapter_in_model(cfg.lora.peft_config(text_encoder=True), te, adapter_name="default")
            models.append(te)
    cast_training_params(models, dtype=torch.float32)
    if cfg.optim.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if cfg.train_text_encoder:
            for te in text_encoders:
                te.gradient_checkpointing_enable()


def family_pipeline(family, base: str, *, vae, unet, text_encoders: list, tokenizers: list):
    """The family's diffusers pipeline around in-memory (possibly adapted) networks, DPM-Solver++ sampler."""
    from diffusers import DPMSolverMultistepScheduler

    sampler = DPMSolverMultistepScheduler.from_pretrained(base, subfolder="scheduler")
    parts = dict(zip(family.text_encoders, text_encoders, strict=True))
    parts.update(zip(family.tokenizers, tokenizers, strict=True))
    return family.pipeline_class()(vae=vae, unet=unet, scheduler=sampler, **parts, **family.pipeline_kwargs())


def validation_prompts(cfg, captions: list[list[str]], images: torch.Tensor, n: int = 4):
    """The configured prompts, else ``n`` training captions spread over the data (with their images)."""
    if cfg.validation_prompts:
        return list(cfg.validation_prompts), None
    n = min(n, len(captions))
    idx = [round(i * (len(captions) - 1) / max(1, n - 1)) for i in range(n)]
    return [captions[i][0] for i in idx], images[idx]


def lora_state_dicts(trainable: DenoiseTrainable, with_text: bool) -> tuple[dict, list[dict]]:
    """UNet and text-encoder LoRA weights in diffusers' key layout (float32, CPU)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    def grab(module) -> dict:
        sd = convert_state_dict_to_diffusers(get_peft_model_state_dict(module, save_embedding_layers=False))
        return {k: v.detach().float().cpu().contiguous() for k, v in sd.items()}

    unet = grab(trainable.unet)
    tes = [grab(te) for te in trainable.text_encoders] if with_text else []
    return unet, tes


def build_lora_run(cfg: LoraTrainConfig, accelerator, data: FinetuneData, family) -> FinetuneRun:
    """Load the frozen base, insert the LoRA layers, and describe the run for :func:`run_finetune`."""
    dtype = weight_dtype(accelerator.mixed_precision)
    vae, unet, text_encoders, tokenizers, noise_scheduler = load_frozen_parts(cfg.base, family, dtype)
    torch.manual_seed(cfg.seed)  # the LoRA matrices' initial values
    add_lora(unet, text_encoders, cfg)
    unet.to(accelerator.device)
    for te in text_encoders:
        te.to(accelerator.device)
    trainable = DenoiseTrainable(family, unet, text_encoders, tokenizers, cfg.resolution,
                                 train_text=cfg.train_text_encoder)

    def prompts_fn(items: torch.Tensor, g: torch.Generator) -> list[str]:
        return choose_prompts(data.captions, items, cfg.caption_dropout, g)

    prompts, real = validation_prompts(cfg, data.captions, data.images)
    validation = Validation(prompts=prompts, real=real, steps=cfg.validation_steps,
                            guidance_scale=cfg.validation_guidance_scale, resolution=cfg.resolution, seed=cfg.seed,
                            make_pipeline=lambda: family_pipeline(family, cfg.base, vae=vae, unet=unet,
                                                                  text_encoders=text_encoders,
                                                                  tokenizers=tokenizers).to(accelerator.device))

    def export(module: DenoiseTrainable, result) -> dict:
        unet_sd, te_sds = lora_state_dicts(accelerator.unwrap_model(module), cfg.train_text_encoder)
        metadata = {"unet": unet.peft_config["default"].to_dict()}
        if cfg.train_text_encoder:
            metadata["text_encoder"] = text_encoders[0].peft_config["default"].to_dict()
        family.save_lora(cfg.out, unet_sd, te_sds, metadata)
        apply_umask(cfg.out)
        size = (cfg.out / LORA_FILE).stat().st_size
        logger.info("LoRA weights: %s (%.2f MB)", cfg.out / LORA_FILE, size / 1e6)
        return {"lora_file": LORA_FILE, "lora_file_bytes": size,
                "unet_lora_tensors": len(unet_sd), "text_encoder_lora_tensors": [len(s) for s in te_sds]}

    def held_out_prompts(val: FinetuneData):
        return lambda items, g: [val.captions[i][0] for i in items.tolist()]  # each row's own caption

    return FinetuneRun(name="lora", trainable=trainable, vae=vae, noise_scheduler=noise_scheduler, data=data,
                       item_rows=torch.arange(len(data)), prompts_fn=prompts_fn, export=export, validation=validation,
                       held_out_prompts=held_out_prompts)


@writes_to(first_argument("config", "out"))
def train_lora(config: LoraTrainConfig) -> Path:
    """Fine-tune an SD 1.5 / SDXL pipeline with LoRA and save ``pytorch_lora_weights.safetensors``.

    Args:
        config: The run's configuration.

    Returns:
        ``config.out``; vanilla diffusers restores the adapted model with
        ``DiffusionPipeline.from_pretrained(base).load_lora_weights(out)``.

    Raises:
        DataError: the dataset is missing, empty or uncaptioned.
        ConfigError: bad base / family / output directory, bitsandbytes missing for 8-bit Adam.
        TrainingError: the loss became NaN or infinite.
    """
    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    # Inputs first: a bad dataset or base fails before any model is loaded.
    data = load_finetune_data(cfg.data, resolution=cfg.resolution, split=cfg.split,
                              use_paraphrases=cfg.use_paraphrases)
    check_base(cfg.base)
    family = get_family(cfg.family, cfg.base)
    accelerator, data_hash = start(cfg, owned=(LORA_FILE,))
    run = build_lora_run(cfg, accelerator, data, family)
    run_finetune(accelerator, cfg, run, data_hash=data_hash, extra={"base": cfg.base, "family": family.name})
    return cfg.out
