"""``synthmed data``: build, import, split and inspect dataset directories."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Build, import, split and inspect dataset directories.", no_args_is_help=True)
