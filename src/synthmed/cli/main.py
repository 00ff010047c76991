"""Entry point of the ``synthmed`` command.

Each subcommand builds a typed config and calls one library function; errors that
synthmed raises on bad input (:class:`synthmed.errors.SynthmedError`) are shown as one
red line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import errno
import logging
import sys

import typer
from rich.logging import RichHandler

import synthmed.cli.console as console
from synthmed import __version__
from synthmed.cli.app import app_command
from synthmed.cli.caption import caption_command
from synthmed.cli.data import data_app
from synthmed.cli.demo import demo_command
from synthmed.cli.evaluate import evaluate_app
from synthmed.cli.evaluate_fidelity import fidelity_command, privacy_command
from synthmed.cli.generate import generate_command
from synthmed.cli.judge import judge_command
from synthmed.cli.localize import explain_command, localization_command, localize_app
from synthmed.cli.paraphrase import paraphrase_command
from synthmed.cli.phantom import phantom_command
from synthmed.cli.push import push_command
from synthmed.cli.run import report_command, run_command
from synthmed.cli.study import study_app
from synthmed.cli.train import train_app
from synthmed.errors import SynthmedError

app = typer.Typer(
    name="synthmed",
    help="Synthetic medical images you can trust and control: caption, train, generate, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app.command("phantom")(phantom_command)
app.add_typer(data_app, name="data")
app.command("caption")(caption_command)
app.command("paraphrase")(paraphrase_command)
app.command("demo")(demo_command)
app.command("run")(run_command)
app.command("report")(report_command)
train_app.command("judge")(judge_command)
app.add_typer(train_app, name="train")
app.command("generate")(generate_command)
evaluate_app.command("fidelity")(fidelity_command)
evaluate_app.command("privacy")(privacy_command)
evaluate_app.command("localization")(localization_command)
app.add_typer(localize_app, name="localize")
app.command("explain")(explain_command)
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(study_app, name="study")
app.command("app")(app_command)
app.command("push")(push_command)



def _version(value: bool) -> None:
    if value:
        typer.echo(f"synthmed {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console.err, show_path=False, show_time=False)],
        force=True,
    )


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except SynthmedError as err:
        console.error(str(err))
        sys.exit(2)
    except OSError as err:  # a read-only or full disk, a missing permission: the path and what to do
        console.error(os_error_message(err))
        sys.exit(1)


_OS_HINTS = {
    errno.ENOSPC: "free some space or choose another --out; rerun the same command to resume",
    errno.EDQUOT: "free some space or choose another --out; rerun the same command to resume",
    errno.EACCES: "check the permissions, or choose another --out",
    errno.EPERM: "check the permissions, or choose another --out",
    errno.EROFS: "the file system is read-only; choose another --out",
}


def os_error_message(err: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    what = err.strerror or str(err)
    hint = _OS_HINTS.get(err.errno or 0)
    return f"{where}{what}" + (f"; {hint}" if hint else "")


if __name__ == "__main__":  # pragma: no cover
    run()
