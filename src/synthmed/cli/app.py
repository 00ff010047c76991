"""``synthmed app``: the interactive app (Gradio, the [app] extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.utils.configs import load_config


def app_command(
    run: Path = typer.Option(None, "--run", help="Run directory: its generator, localiser and judge are the defaults."),
    model: str = typer.Option(None, "--model", help="Text-to-image pipeline folder or hub id (overrides the run's)."),
    localizer: Path = typer.Option(None, "--localizer", help="Localiser folder from `synthmed localize train`."),
    vlm: str = typer.Option(None, "--vlm", help="hf:<model> or api:<model> for the explanations."),
    vlm_base_url: str = typer.Option(None, "--vlm-base-url",
                                     help="api: the OpenAI-compatible server (default: $SYNTHMED_API_BASE)."),
    judge: str = typer.Option(None, "--judge", help="Findings judge folder or builtin:<name> (reads each image)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(7860, "--port", help="Port to listen on."),
    device: str = typer.Option(None, "--device", help="Torch device: auto, cpu, cuda..."),
) -> None:
    """Generate labelled images from findings, localise and explain a scan, browse runs — in the browser."""
    from synthmed.app.models import AppConfig
    from synthmed.app.ui import launch

    cfg = load_config(AppConfig, None, {"run": run, "model": model, "localizer": localizer, "vlm": vlm,
                                        "vlm_base_url": vlm_base_url, "judge": judge, "host": host, "port": port,
                                        "device": device},
                      what="app options")
    launch(cfg)
