"""``synthmed caption``: write structured findings and prompt text into a dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.caption import caption_dataset, captioner_names


def caption_command(
    data: Path = typer.Argument(..., help="Dataset directory to caption in place."),
    captioner: str = typer.Option("mask", "--captioner", "-c",
                                  help=f"Captioner name ({', '.join(captioner_names())})."),
    modality: str = typer.Option("brain_mri", "--modality", help="Modality of rows without findings."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per captioner call."),
) -> None:
    """Caption every image of a dataset: `findings` and `text` are (re)written, originals kept."""
    summary = caption_dataset(data, captioner, modality=modality, batch_size=batch_size)
    typer.echo(f"captioned {summary.captioned} of {summary.rows} rows with '{summary.captioner}'"
               + (f"; {summary.failed} failed (see caption_error)" if summary.failed else ""))
