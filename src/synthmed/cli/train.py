"""``synthmed train``: train generative models (``ldm``), fine-tune pretrained ones (``lora``,
``textual-inversion``, ``kandinsky``, ``controlnet``) and train the lesion ``segmenter``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli.options import CAPTIONED_DATA, MIXED_PRECISION, NO_PROGRESS, OVERWRITE, RESOLUTION, RESUME, SEED

train_app = typer.Typer(help="Train generative models.", no_args_is_help=True)


def _register_finetune() -> None:
    from synthmed.cli.finetune import controlnet_command, kandinsky_command, lora_command, textual_inversion_command

    train_app.command("lora")(lora_command)
    train_app.command("textual-inversion")(textual_inversion_command)
    train_app.command("kandinsky")(kandinsky_command)
    train_app.command("controlnet")(controlnet_command)


_register_finetune()


@train_app.command("ldm")
def ldm_command(
    data: Path | None = CAPTIONED_DATA,
    out: Path | None = typer.Option(None, "--out", help="Model directory (a diffusers pipeline folder)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (e.g. configs/ldm-demo.yaml)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps of each stage."),
    minutes: float | None = typer.Option(None, "--minutes", help="Wall-clock budget for both stages together."),
    resolution: int | None = RESOLUTION,
    text_encoder: str | None = typer.Option(None, "--text-encoder",
                                            help="Hub id, local path, or alias (minilm, clip-vit-l-14)."),
    pretrained_autoencoder: str | None = typer.Option(
        None, "--pretrained-autoencoder", help="A trained AutoencoderKL (folder, pipeline folder, or "
        "builtin:phantom-vae-128): stage 1 is skipped."),
    condition: str | None = typer.Option(
        None, "--condition", help="text (default); mask: condition on text and each row's lesion mask; mask+head: "
        "and on the head outline found in each image. The model then paints lesions where a mask says "
        "(generate --masks / --masks-from-findings)."),
    seed: int | None = SEED,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    mixed_precision: str | None = MIXED_PRECISION,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Train a text-conditioned latent diffusion model from scratch (autoencoder, then UNet)."""
    from synthmed.train.ldm import LDMTrainConfig, train_ldm
    from synthmed.utils.configs import load_config

    overrides = {"data": str(data) if data else None, "out": str(out) if out else None, "max_steps": max_steps,
                 "minutes": minutes, "resolution": resolution, "text_encoder": text_encoder, "seed": seed,
                 "pretrained_autoencoder": pretrained_autoencoder,
                 "resume": resume or None, "overwrite": overwrite or None, "mixed_precision": mixed_precision,
                 "progress": False if no_progress else None, "unet": {"condition": condition} if condition else None}
    cfg = load_config(LDMTrainConfig, config, overrides)
    path = train_ldm(cfg)
    typer.echo(f"model saved to {path}")


@train_app.command("segmenter")
def segmenter_command(
    data: Path | None = typer.Option(None, "--data", help="Dataset whose rows have lesion masks."),
    out: Path | None = typer.Option(None, "--out", help="Output folder."),
    config: Path | None = typer.Option(None, "--config", help="YAML config."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps."),
    resolution: int | None = RESOLUTION,
    split: str | None = typer.Option(None, "--split", help="Rows to train on (default train)."),
    val_split: str | None = typer.Option(None, "--val-split", help="Rows that calibrate the threshold (default val)."),
    seed: int | None = SEED,
    resume: bool = RESUME,
    overwrite: bool = OVERWRITE,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """A lesion segmenter (small U-Net) from image + mask pairs: what mask adherence and localisation TSTR use."""
    from synthmed.segment import SegmenterTrainConfig, train_segmenter
    from synthmed.utils.configs import load_config

    overrides = {"data": str(data) if data else None, "out": str(out) if out else None, "max_steps": max_steps,
                 "model": {"resolution": resolution} if resolution else None, "split": split, "val_split": val_split,
                 "seed": seed, "resume": resume or None, "overwrite": overwrite or None,
                 "progress": False if no_progress else None}
    path = train_segmenter(load_config(SegmenterTrainConfig, config, overrides))
    typer.echo(f"segmenter saved to {path}")
