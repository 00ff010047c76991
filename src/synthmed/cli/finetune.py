"""``synthmed train lora | textual-inversion | kandinsky | controlnet``: fine-tune pretrained diffusers pipelines."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli.options import CAPTIONED_DATA, MIXED_PRECISION, NO_PROGRESS, OVERWRITE, RESOLUTION, RESUME, SEED

_BASE = typer.Option(None, "--base", help="Pretrained pipeline: hub id (runwayml/stable-diffusion-v1-5) or folder.")
_OUT = typer.Option(None, "--out", help="Output directory.")
_CONFIG = typer.Option(None, "--config", help="YAML config (e.g. configs/lora-sd15-seed000.yaml).")
_MAX_STEPS = typer.Option(None, "--max-steps", help="Optimizer steps.")
_LR = typer.Option(None, "--lr", help="Learning rate.")
_BATCH_SIZE = typer.Option(None, "--batch-size", help="Images per micro-batch and process.")
_GRAD_ACCUM = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step.")
_VALIDATION_EVERY = typer.Option(None, "--validation-every", help="Steps between validation grids.")


def _common(base, data, out, max_steps, resolution, family, seed, resume, overwrite, mixed_precision, no_progress,
            validation_every, lr, batch_size, grad_accum) -> dict:
    return {"base": base, "data": str(data) if data else None, "out": str(out) if out else None,
            "max_steps": max_steps, "resolution": resolution, "family": family, "seed": seed,
            "resume": resume or None, "overwrite": overwrite or None, "mixed_precision": mixed_precision,
            "progress": False if no_progress else None, "validation_every": validation_every,
            "optim": _drop_none({"lr": lr, "batch_size": batch_size, "grad_accum": grad_accum})}


def _drop_none(d: dict) -> dict | None:
    """``d`` without unset flags (None when nothing is left), so YAML values under it survive."""
    kept = {k: v for k, v in d.items() if v is not None}
    return kept or None


def lora_command(
    base: str | None = _BASE,
    data: Path | None = CAPTIONED_DATA,
    out: Path | None = _OUT,
    config: Path | None = _CONFIG,
    max_steps: int | None = _MAX_STEPS,
    resolution: int | None = RESOLUTION,
    rank: int | None = typer.Option(None, "--rank", help="LoRA rank."),
    alpha: float | None = typer.Option(None, "--alpha", help="LoRA alpha (default: the rank)."),
    dora: bool = typer.Option(False, "--dora", help="Weight-decomposed LoRA (DoRA)."),
    rslora: bool = typer.Option(False, "--rslora", help="Rank-stabilised scaling alpha/sqrt(rank)."),
    train_text_encoder: bool = typer.Option(False, "--train-text-encoder", help="LoRA on the text encoder(s) too."),
    family: str | None = typer.Option(None, "--family", help="auto (from model_index.json), sd15 or sdxl."),
    lr: float | None = _LR,
    batch_size: int | None = _BATCH_SIZE,
    grad_accum: int | None = _GRAD_ACCUM,
    validation_every: int | None = _VALIDATION_EVERY,
    val_split: str | None = typer.Option(None, "--val-split", help="Held-out split (e.g. val) for a validation "
                                         "loss at fixed timesteps and noise, every --val-loss-every steps."),
    val_loss_every: int | None = typer.Option(None, "--val-loss-every", help="Steps between validation losses."),
    keep: str | None = typer.Option(None, "--keep", help="last (default) or best: export the weights of the step "
                                    "with the lowest validation loss."),
    noise_offset: float | None = typer.Option(None, "--noise-offset", help="Offset noise (e.g. 0.05)."),
    seed: int | None = SEED,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    mixed_precision: str | None = MIXED_PRECISION,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """LoRA on the UNet attention of SD 1.5 / SDXL (and optionally the text encoders)."""
    from synthmed.train.finetune import LoraTrainConfig, train_lora
    from synthmed.utils.configs import load_config

    overrides = _common(base, data, out, max_steps, resolution, family, seed, resume, overwrite, mixed_precision,
                        no_progress, validation_every, lr, batch_size, grad_accum)
    overrides["train_text_encoder"] = train_text_encoder or None
    overrides.update({"val_split": val_split, "val_loss_every": val_loss_every, "keep": keep})
    if noise_offset is not None:
        overrides["optim"] = {**(overrides["optim"] or {}), "noise_offset": noise_offset}
    overrides["lora"] = _drop_none({"rank": rank, "alpha": alpha, "use_dora": dora or None,
                                    "use_rslora": rslora or None})
    path = train_lora(load_config(LoraTrainConfig, config, overrides))
    typer.echo(f"LoRA weights saved to {path / 'pytorch_lora_weights.safetensors'}")


def textual_inversion_command(
    base: str | None = _BASE,
    data: Path | None = CAPTIONED_DATA,
    out: Path | None = _OUT,
    config: Path | None = _CONFIG,
    token: list[str] = typer.Option([], "--token", help="New placeholder token, e.g. '<glioma>' (repeatable)."),
    init_word: list[str] = typer.Option([], "--init-word", help="Initial word of each token (one per --token)."),
    num_vectors: int = typer.Option(8, "--num-vectors", help="Embedding vectors per token."),
    label: list[str] = typer.Option([], "--label", help="Train each token on rows with this label (one per token)."),
    a1111: bool = typer.Option(False, "--a1111", help="Also write the AUTOMATIC1111 .pt/.safetensors layout."),
    max_steps: int | None = _MAX_STEPS,
    resolution: int | None = RESOLUTION,
    family: str | None = typer.Option(None, "--family", help="auto (from model_index.json) or sd15."),
    lr: float | None = _LR,
    batch_size: int | None = _BATCH_SIZE,
    grad_accum: int | None = _GRAD_ACCUM,
    validation_every: int | None = _VALIDATION_EVERY,
    seed: int | None = SEED,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    mixed_precision: str | None = MIXED_PRECISION,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Textual inversion: new multi-vector tokens, only their embedding rows trained."""
    from synthmed.errors import ConfigError
    from synthmed.train.finetune import TextualInversionConfig, train_textual_inversion
    from synthmed.utils.configs import load_config

    overrides = _common(base, data, out, max_steps, resolution, family, seed, resume, overwrite, mixed_precision,
                        no_progress, validation_every, lr, batch_size, grad_accum)
    if token:
        if len(init_word) != len(token):
            raise ConfigError(f"give one --init-word per --token ({len(token)} tokens, {len(init_word)} words)")
        if label and len(label) != len(token):
            raise ConfigError(f"give one --label per --token or none ({len(token)} tokens, {len(label)} labels)")
        overrides["concepts"] = [{"token": t, "init_word": w, "num_vectors": num_vectors,
                                  "label": label[i] if label else None}
                                 for i, (t, w) in enumerate(zip(token, init_word, strict=True))]
    overrides["a1111"] = a1111 or None
    path = train_textual_inversion(load_config(TextualInversionConfig, config, overrides))
    typer.echo(f"embeddings saved in {path}")


def kandinsky_command(
    data: Path | None = CAPTIONED_DATA,
    out: Path | None = _OUT,
    config: Path | None = _CONFIG,
    prior: str | None = typer.Option(None, "--prior", help="Kandinsky 2.2 prior pipeline (hub id or folder)."),
    decoder: str | None = typer.Option(None, "--decoder", help="Kandinsky 2.2 decoder pipeline (hub id or folder)."),
    stage: str | None = typer.Option(None, "--stage",
                                     help="decoder, prior, or staged (decoder -> prior -> decoder, seed 001)."),
    prior_lora: Path | None = typer.Option(None, "--prior-lora", help="Trained prior LoRA dir (decoder stages)."),
    decoder_lora_init: Path | None = typer.Option(None, "--decoder-lora-init",
                                                  help="Start from / validate with this decoder LoRA dir."),
    kandinsky3: str | None = typer.Option(None, "--kandinsky3",
                                          help="Train a Kandinsky 3 pipeline (hub id or folder) instead."),
    rank: int | None = typer.Option(None, "--rank", help="LoRA rank (of the stage(s) trained)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps (per stage)."),
    resolution: int | None = RESOLUTION,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH_SIZE,
    grad_accum: int | None = _GRAD_ACCUM,
    validation_every: int | None = _VALIDATION_EVERY,
    seed: int | None = SEED,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    overwrite: bool = OVERWRITE,
    mixed_precision: str | None = MIXED_PRECISION,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """LoRA on Kandinsky 2.2 (prior and/or decoder, seed 001's staged order) or on the Kandinsky 3 UNet."""
    from synthmed.utils.configs import load_config

    overrides = _common(kandinsky3, data, out, max_steps, resolution, None, seed, resume, overwrite,
                        mixed_precision, no_progress, validation_every, lr, batch_size, grad_accum)
    overrides.pop("family")
    if kandinsky3 is not None:
        from synthmed.train.finetune.kandinsky3 import Kandinsky3TrainConfig, train_kandinsky3

        overrides["lora"] = _drop_none({"rank": rank})
        path = train_kandinsky3(load_config(Kandinsky3TrainConfig, config, overrides))
    else:
        from synthmed.train.finetune.kandinsky import KandinskyTrainConfig, train_kandinsky

        overrides.update({"prior": prior, "decoder": decoder, "stage": stage,
                          "prior_lora": str(prior_lora) if prior_lora else None,
                          "decoder_lora_init": str(decoder_lora_init) if decoder_lora_init else None})
        if rank is not None:
            which = stage or "staged"
            if which in ("prior", "staged"):
                overrides["prior_lora_spec"] = {"rank": rank}
            if which in ("decoder", "staged"):
                overrides["decoder_lora_spec"] = {"rank": rank}
        path = train_kandinsky(load_config(KandinskyTrainConfig, config, overrides))
    typer.echo(f"LoRA weights saved in {path}")


def controlnet_command(
    base: str | None = _BASE,
    data: Path | None = typer.Option(None, "--data", help="Captioned dataset whose rows have lesion masks."),
    out: Path | None = _OUT,
    config: Path | None = _CONFIG,
    controlnet: str | None = typer.Option(None, "--controlnet", help="Continue from this ControlNet (default: a "
                                          "copy of the base UNet's encoder)."),
    caption_dropout: float | None = typer.Option(None, "--caption-dropout", help="Probability of the empty prompt."),
    max_steps: int | None = _MAX_STEPS,
    resolution: int | None = RESOLUTION,
    family: str | None = typer.Option(None, "--family", help="auto (from model_index.json), sd15 or sdxl."),
    lr: float | None = _LR,
    batch_size: int | None = _BATCH_SIZE,
    grad_accum: int | None = _GRAD_ACCUM,
    validation_every: int | None = _VALIDATION_EVERY,
    seed: int | None = SEED,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    mixed_precision: str | None = MIXED_PRECISION,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """A lesion-mask ControlNet for a frozen SD 1.5 / SDXL pipeline or a `synthmed train ldm` model."""
    from synthmed.train.finetune.controlnet import ControlNetTrainConfig, train_controlnet
    from synthmed.utils.configs import load_config

    overrides = _common(base, data, out, max_steps, resolution, family, seed, resume, overwrite, mixed_precision,
                        no_progress, validation_every, lr, batch_size, grad_accum)
    overrides.update({"controlnet": controlnet, "caption_dropout": caption_dropout})
    path = train_controlnet(load_config(ControlNetTrainConfig, config, overrides))
    typer.echo(f"ControlNet saved to {path} (ControlNetModel.from_pretrained)")
