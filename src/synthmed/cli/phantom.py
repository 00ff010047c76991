"""``synthmed data phantom``: build the built-in brain-MRI benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.data.phantom import PhantomConfig, generate_phantom


def phantom_command(
    out: Path = typer.Option(..., "--out", help="Output dataset directory."),
    n: int = typer.Option(2000, "--n", help="Number of slices."),
    size: int = typer.Option(128, "--size", help="Image size in pixels (square, 220 mm field of view)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same dataset)."),
    tumor_fraction: float = typer.Option(0.5, "--tumor-fraction", help="Fraction of patients with a tumour."),
    slices_per_patient: int = typer.Option(4, "--slices-per-patient", help="Axial slices per patient."),
    workers: int = typer.Option(0, "--workers", help="Processes (0 = one per CPU core)."),
) -> None:
    """Write the phantom brain-MRI benchmark: images, masks, patients, splits and true findings."""
    cfg = PhantomConfig(out=out, n=n, size=size, seed=seed, tumor_fraction=tumor_fraction,
                        slices_per_patient=slices_per_patient, workers=workers)
    generate_phantom(cfg)
    typer.echo(f"wrote {n} phantom slices to {out}")
