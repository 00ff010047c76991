"""``synthmed run CONFIG.yaml`` (a whole study from one config) and ``synthmed report RUN_DIR``."""

from __future__ import annotations

from pathlib import Path

import typer


def run_command(
    config: Path | None = typer.Argument(None, help="Pipeline config (YAML), e.g. configs/run-*.yaml."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default: the config's 'out')."),
    check: bool = typer.Option(False, "--check", help="Validate the config and every stage's settings; run nothing, "
                               "download nothing."),
    force: list[str] = typer.Option([], "--force", help="Rerun this stage (and what reads from it) even if unchanged; "
                                    "repeatable."),
    list_stages: bool = typer.Option(False, "--list-stages", help="List the registered stage kinds and exit."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html into the run directory."),
) -> None:
    """Run every stage of CONFIG into the run directory, skipping stages whose inputs and settings are unchanged."""
    from synthmed.pipeline.config import load_pipeline_config
    from synthmed.pipeline.registry import get_stage, stage_kinds
    from synthmed.pipeline.runner import check_pipeline, run_pipeline

    if list_stages:
        for kind in stage_kinds():
            sdef = get_stage(kind)
            reason = sdef.available()
            typer.echo(f"{kind:<26} {sdef.summary}" + ("" if reason is None else "  [not available here]"))
        raise typer.Exit()
    if config is None:
        raise typer.BadParameter("give a pipeline config (or --list-stages)", param_hint="CONFIG")
    cfg = load_pipeline_config(config)
    if check:
        result = check_pipeline(cfg, out)
        for line in result.lines:
            typer.echo(line)
        for note in result.notes:
            typer.echo(f"note: {note}")
        typer.echo(f"{config}: ok ({len(cfg.stages)} stages)")
        return
    result = run_pipeline(cfg, out, force=force, config_file=config)
    for s in result.stages:
        typer.echo(f"{s.name:<20} {s.kind:<24} {s.status:<9} {s.seconds:>8.1f} s")
    if report:
        from synthmed.report import write_report

        path = write_report(result.run_dir)
        typer.echo(f"report: {path}")
    typer.echo(f"run finished in {result.seconds:.1f} s: {result.run_dir}")


def report_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `synthmed run` or `synthmed demo`."),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (default: RUN_DIR/report.html)."),
    max_images: int = typer.Option(6, "--max-images", min=1, help="Images per row of each real-vs-generated grid."),
) -> None:
    """Write one self-contained HTML report of a run (images embedded, no network needed to view it)."""
    from synthmed.report import write_report

    path = write_report(run_dir, out, max_images=max_images)
    typer.echo(f"report: {path}")
