"""``synthmed localize train | predict | pretrain-backbone`` and ``synthmed evaluate localization``."""

from __future__ import annotations

from pathlib import Path

import typer

import synthmed.cli.console as console
from synthmed.cli.options import (
    CAPTIONED_DATA,
    CONFIG,
    NO_PROGRESS,
    OVERWRITE,
    SEED,
    THREADS,
    TORCH_DEVICE,
    number_list,
)
from synthmed.results import LocalizationResult
from synthmed.utils.configs import load_config

localize_app = typer.Typer(help="Localise tumours with a CLIP-based anomaly model (seed 003).", no_args_is_help=True)


_PRED = typer.Option(None, "--pred", help="Output folder of `synthmed localize predict`.")


def _print_metrics(result: LocalizationResult) -> None:
    keys = ("pixel_auroc", "pixel_ap", "pixel_accuracy", "pixel_precision", "pixel_recall", "pixel_dice",
            "pixel_iou", "image_auroc")
    shown = [f"{k} {result.metrics[k].text(4)}" for k in keys
             if k in result.metrics and result.metrics[k].value is not None]
    console.out.print(f"threshold {result.threshold}: " + ", ".join(shown))


@localize_app.command("train")
def train_command(
    data: Path = typer.Option(None, "--data", help="Dataset directory with lesion masks (empty mask = healthy)."),
    out: Path = typer.Option(None, "--out", help="Localiser folder to write."),
    backbone: str = typer.Option(None, "--backbone",
                                 help="CLIP hub id or folder, or 'scratch' (pretrain a small CLIP on --data first)."),
    preset: str = typer.Option(None, "--preset", help="paper (seed 003: ViT-L/14, 3 epochs), cpu, or quick."),
    epochs: int = typer.Option(None, "--epochs", help="Override the preset's epochs."),
    batch_size: int = typer.Option(None, "--batch-size", help="Override the preset's batch size."),
    lr: float = typer.Option(None, "--lr", help="Decoder learning rate."),
    stage_layers: str = typer.Option(None, "--stage-layers", help="Vision layers, e.g. 6,12,18,24."),
    train_backbone_layers: int = typer.Option(None, "--train-backbone-layers",
                                              help="Also train the last N vision layers (0 = frozen, as the seed)."),
    image_score: str = typer.Option(None, "--image-score", help="zero-shot (seed), map-max, or mean of both."),
    backbone_lr: float = typer.Option(None, "--backbone-lr", help="Learning rate of the trained backbone layers."),
    center_text: bool = typer.Option(None, "--center-text/--no-center-text",
                                     help="Centre Ft before the patch-text softmax (cpu/quick presets; not the seed)."),
    image_loss_weight: float = typer.Option(None, "--image-loss-weight",
                                            help="Weight of the image-level loss on the --image-score (0 = the seed)."),
    lr_decay_epochs: int = typer.Option(None, "--lr-decay-epochs",
                                        help="Decay the learning rates to 0 on a cosine over the last N epochs "
                                             "(0 = constant, the seed)."),
    test_time_flip: bool = typer.Option(None, "--test-time-flip/--no-test-time-flip",
                                        help="The saved localiser also looks at each image's mirror and averages "
                                             "(cpu preset; not the seed)."),
    test_time_shift: int = typer.Option(None, "--test-time-shift",
                                        help="The saved localiser also looks at each image shifted by N input "
                                             "pixels each way and averages (cpu preset: 2; 0 = the seed)."),
    seed: int = SEED,
    threads: int = THREADS,
    device: str = TORCH_DEVICE,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    overwrite: bool = OVERWRITE,
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    config: Path = CONFIG,
) -> None:
    """Train the stage decoders (focal + dice against the masks) and calibrate the map threshold."""
    from synthmed.localize.config import LocalizeTrainConfig
    from synthmed.localize.train import train_localizer

    cfg = load_config(LocalizeTrainConfig, config, {
        "data": data, "out": out, "backbone": backbone, "preset": preset, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "stage_layers": number_list(stage_layers, int, what="layer numbers", hint="--stage-layers"),
        "train_backbone_layers": train_backbone_layers, "image_score": image_score, "backbone_lr": backbone_lr,
        "center_text": center_text, "image_loss_weight": image_loss_weight,
        "lr_decay_epochs": lr_decay_epochs, "test_time_flip": test_time_flip,
        "test_time_shift": test_time_shift, "seed": seed, "threads": threads, "device": device,
        "resume": resume or None, "overwrite": overwrite or None, "progress": False if no_progress else None})
    path = train_localizer(cfg)
    typer.echo(f"localiser saved to {path}")


@localize_app.command("predict")
def predict_command(
    model: Path = typer.Option(None, "--model", help="Localiser folder from `synthmed localize train`."),
    data: Path = typer.Option(None, "--data", help="Dataset directory to localise."),
    out: Path = typer.Option(None, "--out", help="Output folder (maps, overlays, predictions.jsonl, metrics.json)."),
    split: str = typer.Option(None, "--split", help="Only this split (train/val/test)."),
    threshold: float = typer.Option(None, "--threshold", help="Map threshold (default: calibrated in training)."),
    map_format: str = typer.Option(None, "--map-format", help="png16 (default) or npy."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per forward pass."),
    test_time_flip: bool = typer.Option(None, "--test-time-flip/--no-test-time-flip",
                                        help="Also look at each image's mirror (default: the localiser's setting)."),
    test_time_shift: int = typer.Option(None, "--test-time-shift",
                                        help="Also look at each image shifted by N input pixels each way "
                                             "(default: the localiser's setting)."),
    threads: int = THREADS,
    device: str = TORCH_DEVICE,
    no_progress: bool = NO_PROGRESS,
    config: Path = CONFIG,
) -> None:
    """Write anomaly maps, overlays, image scores and findings; metrics.json when masks exist."""
    from synthmed.localize.predict import LocalizePredictConfig, predict_localization

    cfg = load_config(LocalizePredictConfig, config, {
        "model": model, "data": data, "out": out, "split": split, "threshold": threshold, "map_format": map_format,
        "batch_size": batch_size, "test_time_flip": test_time_flip, "test_time_shift": test_time_shift,
        "threads": threads, "device": device, "progress": False if no_progress else None})
    metrics = predict_localization(cfg)
    if metrics is not None:
        _print_metrics(metrics)
    typer.echo(f"wrote {cfg.out}")


@localize_app.command("pretrain-backbone")
def pretrain_command(
    data: Path = CAPTIONED_DATA,
    out: Path = typer.Option(None, "--out", help="CLIP folder to write (loads with CLIPModel.from_pretrained)."),
    epochs: int = typer.Option(None, "--epochs", help="Contrastive training epochs."),
    image_size: int = typer.Option(None, "--image-size", help="Input side in pixels."),
    seed: int = SEED,
    threads: int = THREADS,
    device: str = TORCH_DEVICE,
    resume: bool = typer.Option(False, "--resume", help="Continue from the last finished epoch."),
    no_progress: bool = NO_PROGRESS,
    config: Path = CONFIG,
) -> None:
    """Train a small CLIP from scratch on the dataset's image-caption pairs (the offline backbone)."""
    from synthmed.localize.scratch import BackbonePretrainConfig, pretrain_backbone

    cfg = load_config(BackbonePretrainConfig, config, {
        "data": data, "out": out, "epochs": epochs, "image_size": image_size, "seed": seed, "threads": threads,
        "device": device, "resume": resume or None, "progress": False if no_progress else None})
    typer.echo(f"backbone saved to {pretrain_backbone(cfg)}")


def localization_command(
    pred: Path = _PRED,
    data: Path = typer.Option(None, "--data", help="Dataset directory with the true masks."),
    threshold: float = typer.Option(None, "--threshold", help="Map threshold for accuracy/precision/Dice/IoU."),
    out: Path = typer.Option(None, "--out", help="JSON file to write."),
    config: Path = CONFIG,
) -> None:
    """Pixel AUROC/AP, accuracy, precision, Dice/IoU and image AUROC of saved localisation maps."""
    from synthmed.localize.evaluate import LocalizationEvalConfig, evaluate_localization

    cfg = load_config(LocalizationEvalConfig, config, {"pred": pred, "data": data, "threshold": threshold,
                                                       "out": out})
    _print_metrics(evaluate_localization(cfg))
    if cfg.out is not None:
        typer.echo(f"wrote {cfg.out}")


def explain_command(
    data: Path = typer.Option(None, "--data", help="Dataset directory (true findings are used for scoring)."),
    pred: Path = _PRED,
    out: Path = typer.Option(None, "--out", help="explanation.json to write."),
    vlm: str = typer.Option(None, "--vlm", help="hf:<model id or path> or api:<model>."),
    modes: str = typer.Option(None, "--modes", help="zero-shot,instruction,chain-of-thought (default: all)."),
    split: str = typer.Option(None, "--split", help="Only this split."),
    limit: int = typer.Option(None, "--limit", help="Explain at most this many images."),
    base_url: str = typer.Option(None, "--base-url", help="api: server, e.g. http://localhost:8000/v1."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Reply length limit."),
    device: str = typer.Option(None, "--device", help="hf: device (default: GPU when present)."),
    no_progress: bool = NO_PROGRESS,
    config: Path = CONFIG,
) -> None:
    """Explain each localisation with a VLM in seed 003's prompting modes and score the findings per mode."""
    from synthmed.explain.run import ExplainConfig, explain_dataset

    cfg = load_config(ExplainConfig, config, {
        "data": data, "pred": pred, "out": out, "vlm": vlm, "split": split, "limit": limit, "base_url": base_url,
        "modes": [m.strip() for m in modes.split(",") if m.strip()] if modes else None,
        "max_new_tokens": max_new_tokens, "device": device, "progress": False if no_progress else None})
    report = explain_dataset(cfg)
    for mode, s in report.scores.items():
        shown = ", ".join(f"{k} {m.text(2)}" for k, m in s.attributes.items() if m.value is not None)
        parsed = "—" if s.parsed_fraction is None else f"{s.parsed_fraction:.2f}"
        console.out.print(f"{mode}: parsed {parsed}; {shown}")
    typer.echo(f"wrote {cfg.out}")
