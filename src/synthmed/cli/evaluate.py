"""``synthmed evaluate downstream | adherence | captions``: thin shells over synthmed.evaluate."""

from __future__ import annotations

from pathlib import Path

import typer

import synthmed.cli.console as console
from synthmed.cli.options import CONFIG, THREADS, TORCH_DEVICE, number_list
from synthmed.utils.configs import load_config

evaluate_app = typer.Typer(help="Measure how useful, controllable and accurate images and captions are.",
                           no_args_is_help=True)
_JSON_OUT = typer.Option(None, "--out", help="JSON report to write.")


@evaluate_app.command("downstream")
def downstream_command(
    real: Path = typer.Option(None, "--real", help="Real dataset directory (patient-level train/val/test)."),
    synthetic: Path = typer.Option(None, "--synthetic", help="Synthetic dataset directory."),
    out: Path = typer.Option(None, "--out", help="Metrics JSON file to write."),
    preset: str = typer.Option(None, "--preset", help="Classifier preset: paper (seed 000's ViT), cpu, quick."),
    epochs: int = typer.Option(None, "--epochs", help="Override the preset's epochs."),
    image_size: int = typer.Option(None, "--image-size", help="Override the preset's image size."),
    seeds: str = typer.Option(None, "--seeds", help="Seeds, e.g. 0,1,2 (one model per seed and condition)."),
    task: str = typer.Option(None, "--task", help="binary (tumour vs none) or multiclass."),
    ratios: str = typer.Option(None, "--ratios", help="Synthetic per real image in the mixes, e.g. 0.5,1,2."),
    low_data_fraction: float = typer.Option(None, "--low-data-fraction",
                                            help="Fraction of real training patients in the low-data regime."),
    threads: int = THREADS,
    device: str = TORCH_DEVICE,
    config: Path = CONFIG,
) -> None:
    """Train the classifier on real, synthetic, mixed and low-data sets; test on held-out real images."""
    from synthmed.evaluate.downstream import DownstreamConfig, evaluate_downstream
    from synthmed.evaluate.downstream_report import downstream_tables

    cfg = load_config(DownstreamConfig, config, {
        "real": real, "synthetic": synthetic, "out": out, "preset": preset, "epochs": epochs,
        "image_size": image_size, "seeds": number_list(seeds, int, what="integers", hint="--seeds"), "task": task,
        "ratios": number_list(ratios, float, what="numbers", hint="--ratios"),
        "low_data_fraction": low_data_fraction, "threads": threads, "device": device})
    report = evaluate_downstream(cfg)
    for table in downstream_tables(report):
        console.out.print(table)
    typer.echo(f"wrote {cfg.out}")


@evaluate_app.command("adherence")
def adherence_command(
    fake: Path = typer.Option(None, "--fake", help="Generated dataset directory (rows with requested_findings)."),
    judge: str = typer.Option(None, "--judge", help="Judge directory from `synthmed train judge`, or "
                              "builtin:phantom-128-robust (shipped, for 128 px brain MRI; builtin:phantom-128 is "
                              "its predecessor, trained without blur/noise augmentation)."),
    out: Path = _JSON_OUT,
    threshold: float = typer.Option(None, "--threshold", help="Presence probability meaning 'tumour'."),
    config: Path = CONFIG,
) -> None:
    """Score each generated image against the findings its prompt requested, with a trained judge."""
    from synthmed.evaluate.adherence import AdherenceConfig, evaluate_adherence
    from synthmed.evaluate.tables import agreement_table

    cfg = load_config(AdherenceConfig, config, {"fake": fake, "judge": judge, "out": out, "threshold": threshold})
    report = evaluate_adherence(cfg)
    console.out.print(agreement_table({"generated": report.agreements}, first="images",
                                   title=f"Prompt adherence (judge: {cfg.judge})"))
    judge_row = {k: v for k, v in report.judge_real_test_accuracy.items() if v is not None}
    console.out.print("judge accuracy on real test images: "
                   + ", ".join(f"{k} {v:.2f}" for k, v in judge_row.items()), highlight=False)
    if report.unreliable:
        console.warn(f"the judge itself is below {cfg.min_judge_accuracy:.2f} on real images for: "
                     f"{', '.join(report.unreliable)}")
    if cfg.out is not None:
        typer.echo(f"wrote {cfg.out}")


@evaluate_app.command("captions")
def captions_command(
    pred: Path = typer.Option(None, "--pred", help="Captioned dataset directory, or a .json/.jsonl of predictions."),
    ref: Path = typer.Option(None, "--ref", help="Reference dataset directory."),
    out: Path = _JSON_OUT,
    name: str = typer.Option(None, "--name", help="Captioner name for predictions without a 'captioner' field."),
    config: Path = CONFIG,
) -> None:
    """Per-attribute accuracy of each captioner's findings against reference findings (seed 000's table)."""
    from synthmed.evaluate.captions import CaptionEvalConfig, evaluate_captions
    from synthmed.evaluate.tables import agreement_table

    cfg = load_config(CaptionEvalConfig, config, {"pred": pred, "ref": ref, "out": out, "name": name})
    report = evaluate_captions(cfg)
    console.out.print(agreement_table(report.agreements, first="captioner",
                                   title=f"Caption accuracy against {cfg.ref} ({report.n_reference} images)"))
    for cap, n in report.missing.items():
        if n:
            console.warn(f"{cap}: {n} reference images have no prediction (counted as wrong)")
    if cfg.out is not None:
        typer.echo(f"wrote {cfg.out}")


@evaluate_app.command("mask-adherence")
def mask_adherence_command(
    fake: Path = typer.Option(None, "--fake", help="Generated dataset whose rows carry their masks (mask_file_name)."),
    segmenter: Path = typer.Option(None, "--segmenter", help="Lesion segmenter trained on real images "
                                   "(synthmed train segmenter)."),
    localizer: Path = typer.Option(None, "--localizer", help="Or a localiser trained on real images "
                                   "(synthmed localize train)."),
    out: Path = typer.Option(None, "--out", help="Result JSON file."),
    real: Path = typer.Option(None, "--real", help="Real dataset with masks: the same figures on its held-out "
                              "rows, as the reference."),
    real_split: str = typer.Option(None, "--real-split", help="Split of --real to read (default test)."),
    config: Path = CONFIG,
) -> None:
    """Dice, IoU, pixel AUROC and lesion-centre hits of each generated image against the mask it was made from,
    read by a segmenter or localiser trained on real images."""
    from rich.table import Table

    from synthmed.evaluate.mask_adherence import MaskAdherenceConfig, evaluate_mask_adherence

    cfg = load_config(MaskAdherenceConfig, config, {"fake": fake, "segmenter": segmenter, "localizer": localizer,
                                                    "out": out, "real": real, "real_split": real_split})
    result = evaluate_mask_adherence(cfg)
    sources = [("generated", result.metrics, result.groups)]
    if result.reference:
        sources.append((f"real {result.real_split}", result.reference, result.reference_groups))
    table = Table(title=f"Mask adherence (read by {result.reader}, threshold {result.threshold:.2f})")
    for col in ("images", "group", "n", "Dice", "IoU", "pixel AUROC", "centre inside", "healthy clean"):
        table.add_column(col)
    for name, overall, groups in sources:
        for group, m in [("all", overall), *groups.items()]:
            n = next((x.n for x in m.values() if x.n), 0)
            table.add_row(name, group, str(n), *(m[k].text() if k in m else "—" for k in
                                                 ("dice", "iou", "pixel_auroc", "centre_inside", "healthy_clean")))
    console.out.print(table)
    typer.echo(f"wrote {cfg.out}")


@evaluate_app.command("localization-tstr")
def localization_tstr_command(
    real: Path = typer.Option(None, "--real", help="Real dataset with masks and patient-level train/val/test splits."),
    synthetic: Path = typer.Option(None, "--synthetic", help="Generated image + mask pairs (generate --controlnet)."),
    out: Path = typer.Option(None, "--out", help="Result JSON file (models go beside it)."),
    steps: int = typer.Option(None, "--steps", help="Training steps of every segmenter."),
    low_fraction: float = typer.Option(None, "--low-fraction", help="Fraction of real training patients of the "
                                       "low-data conditions."),
    threads: int | None = THREADS,
    config: Path = CONFIG,
) -> None:
    """Lesion segmenters trained on real, synthetic, real + synthetic and low-data real (+ synthetic) pairs,
    tested on the real test patients (pixel AUROC, Dice, image AUROC, TSTR/TRTR with paired intervals)."""
    from rich.table import Table

    from synthmed.evaluate.localization_tstr import LocalizationTSTRConfig, evaluate_localization_tstr

    cfg = load_config(LocalizationTSTRConfig, config, {"real": real, "synthetic": synthetic, "out": out,
                                                       "steps": steps, "low_fraction": low_fraction,
                                                       "threads": threads})
    result = evaluate_localization_tstr(cfg)
    table = Table(title=f"Localisation downstream ({result.n_test} real test images, "
                        f"{result.n_test_patients} patients, {result.steps} steps per model)")
    for col in ("condition", "real + synthetic pairs", "pixel AUROC", "pixel Dice", "image AUROC"):
        table.add_column(col)
    for name, m in result.conditions.items():
        n = result.training_pairs.get(name, {})
        table.add_row(name, f"{n.get('real', 0)} + {n.get('synthetic', 0)}",
                      *(m[k].text() for k in ("pixel_auroc", "pixel_dice", "image_auroc")))
    for name, m in result.comparisons.items():
        table.add_row(name, "", *(m[k].text() for k in ("pixel_auroc", "pixel_dice", "image_auroc")))
    console.out.print(table)
    typer.echo(f"wrote {cfg.out}")
