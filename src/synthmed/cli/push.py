"""``synthmed push``: an artifact folder to the Hugging Face Hub, with a generated model card."""

from __future__ import annotations

from pathlib import Path

import typer


def push_command(
    folder: Path = typer.Argument(..., help="A trained artifact's folder (it has synthmed.json)."),
    repo: str = typer.Option(None, "--repo", help="Hub model repo id, e.g. user/phantom-ldm."),
    private: bool = typer.Option(False, "--private", help="Create the repo private."),
    license: str = typer.Option("other", "--license", help="License id for the card's front matter."),
    card_only: bool = typer.Option(False, "--card-only", help="Write README.md (the model card) and stop."),
) -> None:
    """Write the artifact's model card and upload it (safetensors only; checkpoints, logs and caches stay)."""
    from synthmed.errors import ConfigError
    from synthmed.share import files_to_push, push, write_model_card

    if card_only:
        typer.echo(f"model card: {write_model_card(folder, license=license)}")
        return
    if not repo:
        raise ConfigError("--repo is required (or --card-only)")
    files = files_to_push(folder)
    typer.echo(f"pushing {len(files)} files of {folder} to {repo}")
    typer.echo(f"pushed: {push(folder, repo, private=private, license=license)}")
