"""``synthmed demo``: the whole pipeline on the built-in benchmark, offline, on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.pipeline.demo import DemoConfig, run_demo


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory."),
    quick: bool = typer.Option(False, "--quick", help="Smoke test: tiny data and budgets (< 2 minutes)."),
    minutes: float = typer.Option(15.0, "--minutes", help="Wall-time budget; training stages scale with it."),
    seed: int = typer.Option(0, "--seed", help="Seed of every stage."),
) -> None:
    """Run the whole pipeline on the built-in phantom benchmark, offline, on a CPU."""
    run_demo(DemoConfig(out=out, quick=quick, minutes=minutes, seed=seed))
    typer.echo(f"demo finished: see {out / 'summary.md'}")
