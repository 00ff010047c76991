"""``synthmed demo``: the pipeline runner with the built-in demo config, offline, on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.errors import ConfigError
from synthmed.pipeline.demo import DemoConfig, run_demo


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory."),
    quick: bool = typer.Option(False, "--quick", help="Smoke test: tiny data and budgets (< 2 minutes)."),
    minutes: float | None = typer.Option(
        None, "--minutes", help="Cap the wall time (minutes): the diffusion model then trains for what is left, at "
        "most its fixed steps, so a slow machine stops early and its figures depend on its speed. Default: a fixed "
        "number of steps, the same model and figures on every machine."),
    preset: str = typer.Option("default", "--preset", help="default: the 15-minute demo; quality: the quality "
                               "recipe (16,000 UNet steps, 840 generated images, TRTR vs TSTR classifiers; under an "
                               "hour on a quiet 2-core CPU, resumable: rerun the same command after a kill)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every stage."),
    threads: int = typer.Option(None, "--threads", min=1, help="torch CPU threads of every stage (default: 1 for the "
                                "demo, which then does not thrash on a busy machine and trains the same model on any "
                                "number of cores; every core for --preset quality). Another count trains another "
                                "model (the order of float sums changes)."),
    force: list[str] = typer.Option([], "--force", help="Rerun this stage (and what reads from it); repeatable."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html into the run directory."),
) -> None:
    """Run the whole pipeline on the built-in phantom benchmark, offline, on a CPU (unchanged stages are skipped)."""
    if preset not in ("default", "quality"):
        raise ConfigError(f"--preset: unknown preset {preset!r}; available: default, quality")
    run_demo(DemoConfig(out=out, quick=quick, preset=preset, minutes=minutes, seed=seed, threads=threads),
             force=tuple(force))
    if report:
        from synthmed.report import write_report

        typer.echo(f"report: {write_report(out)}")
    typer.echo(f"demo finished: see {out / 'summary.md'}")
