"""``synthmed train judge``: train the findings judge used by ``evaluate adherence``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli.options import CONFIG, THREADS, TORCH_DEVICE
from synthmed.utils.configs import load_config


def judge_command(
    data: Path = typer.Option(None, "--data", help="Real dataset directory with splits and findings."),
    out: Path = typer.Option(None, "--out", help="Judge directory to write."),
    preset: str = typer.Option(None, "--preset", help="Judge recipe: cpu (default), quick, large."),
    image_size: int = typer.Option(None, "--image-size", help="Override the preset's input size (multiple of 32)."),
    epochs: int = typer.Option(None, "--epochs", help="Override the preset's epochs."),
    seed: int = typer.Option(None, "--seed", help="Random seed."),
    max_train: int = typer.Option(None, "--max-train", help="Use at most this many training images."),
    threads: int = THREADS,
    device: str = TORCH_DEVICE,
    config: Path = CONFIG,
) -> None:
    """Train a judge on real images only; its accuracy on the real test split is saved with it."""
    from synthmed.judge.train import JudgeTrainConfig, train_judge

    cfg = load_config(JudgeTrainConfig, config, {
        "data": data, "out": out, "preset": preset, "image_size": image_size, "epochs": epochs, "seed": seed,
        "max_train": max_train, "threads": threads, "device": device})
    report = train_judge(cfg)
    acc = ", ".join(f"{k} {v:.3f}" for k, v in report.accuracy().items() if v is not None)
    typer.echo(f"judge written to {report.path} ({report.seconds:.0f} s); real-test accuracy: {acc}")
