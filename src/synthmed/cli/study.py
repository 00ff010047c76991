"""``synthmed study create | serve | score``: a blinded reader study of real vs synthetic images."""

from __future__ import annotations

from pathlib import Path

import typer

import synthmed.cli.console as console
from synthmed.cli.options import CONFIG, OVERWRITE, SEED
from synthmed.utils.configs import load_config

study_app = typer.Typer(help="Blinded reader studies: can readers tell real from synthetic images?",
                        no_args_is_help=True)
_STUDY = typer.Argument(..., help="A study folder written by `synthmed study create`.")


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


@study_app.command("create")
def create_command(
    real: Path = typer.Option(None, "--real", help="Dataset directory of real images."),
    fake: Path = typer.Option(None, "--fake", help="Dataset directory of generated images."),
    out: Path = typer.Option(None, "--out", help="Study folder to write."),
    n_real: int = typer.Option(None, "--n-real", help="Real images (default: as many as synthetic, at most 50)."),
    n_fake: int = typer.Option(None, "--n-fake", help="Synthetic images (default: as many as real, at most 50)."),
    real_split: str = typer.Option(None, "--real-split", help="Draw real images from this split only (e.g. test)."),
    questions: str = typer.Option(None, "--questions",
                                  help="realism and/or findings, comma-separated (default: realism)."),
    title: str = typer.Option(None, "--title", help="Heading readers see."),
    seed: int = SEED,
    overwrite: bool = OVERWRITE,
    config: Path = CONFIG,
) -> None:
    """Draw a balanced, seeded, shuffled set of real and synthetic images under opaque ids."""
    from synthmed.study import StudyCreateConfig, create_study
    from synthmed.study.layout import read_settings

    cfg = load_config(StudyCreateConfig, config, {
        "real": real, "fake": fake, "out": out, "n_real": n_real, "n_fake": n_fake, "real_split": real_split,
        "questions": _names(questions), "title": title, "seed": seed, "overwrite": overwrite or None})
    path = create_study(cfg)
    settings = read_settings(path)
    typer.echo(f"study: {len(settings.items)} images in {path} (the key is {path / 'key.json'}: keep it from "
               f"readers); next: synthmed study serve {path}")


@study_app.command("serve")
def serve_command(
    study: Path = _STUDY,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (other machines need e.g. 0.0.0.0)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    readers: str = typer.Option(None, "--readers", help="Reader names, comma-separated (each gets a link)."),
    n_readers: int = typer.Option(None, "--n-readers", min=1, help="Readers reader-1 ... reader-K."),
) -> None:
    """Serve the study: one link per reader; answers are stored as they are given."""
    from synthmed.study.server import prepare_readers, reader_urls, serve

    for name, url in reader_urls(prepare_readers(study, _names(readers), n_readers), host, port):
        console.out.print(f"{name}: {url}", soft_wrap=True)
    console.out.print("Ctrl-C stops the server; the links stay valid when it is started again.")
    serve(study, host=host, port=port)


@study_app.command("score")
def score_command(
    study: Path = _STUDY,
    out: Path = typer.Option(None, "--out", help="Results JSON to write (default: STUDY/results.json)."),
    n_boot: int = typer.Option(2000, "--n-boot", min=0, help="Bootstrap replicates of each interval (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
) -> None:
    """Score the answers so far: accuracy, ROC AUC, kappa, realism, findings (per reader and pooled)."""
    from synthmed.study import score_study
    from synthmed.study.tables import study_table

    result = score_study(study, out=out, n_boot=n_boot, seed=seed)
    console.out.print(study_table(result))
    typer.echo(f"wrote {out or study / 'results.json'}")
