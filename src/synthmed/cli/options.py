"""Options and parsers that several ``synthmed`` commands share.

Each option below is one definition (flag, default, help text); typer makes a separate
option of it for every command whose signature uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

N = TypeVar("N", int, float)

CONFIG = typer.Option(None, "--config", help="YAML file with any of these options.")
THREADS = typer.Option(None, "--threads", help="CPU threads for torch.")
SEED = typer.Option(None, "--seed", help="Seed of every random draw.")
OVERWRITE = typer.Option(False, "--overwrite", help="Discard a previous run in --out.")
NO_PROGRESS = typer.Option(False, "--no-progress", help="Hide the progress bar.")
TORCH_DEVICE = typer.Option(None, "--device", help="Torch device: auto (the GPU when present), cpu, cuda, cuda:1...")

# the training commands (train ldm, lora, textual-inversion, kandinsky)
CAPTIONED_DATA = typer.Option(None, "--data", help="Captioned dataset directory (rows need 'text').")
RESOLUTION = typer.Option(None, "--resolution", help="Square image side in pixels.")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint.")
MIXED_PRECISION = typer.Option(None, "--mixed-precision", help="auto, no, fp16 or bf16.")

# the hf:/api: back ends of caption and paraphrase
API_CONCURRENCY = typer.Option(4, "--concurrency", help="api: requests in flight at once.")
API_TIMEOUT = typer.Option(120.0, "--timeout", help="api: seconds per request.")
API_MAX_RETRIES = typer.Option(5, "--max-retries", help="api: retries on 429/5xx/timeouts.")
HF_DEVICE = typer.Option(None, "--device", help="hf: device (default: the GPU when present).")


def number_list(value: str | None, kind: Callable[[str], N], *, what: str, hint: str) -> list[N] | None:
    """``value`` ("1,2 3") as numbers of ``kind``; None stays None.

    Raises:
        typer.BadParameter: "expected ``what`` separated by commas", naming the option ``hint``.
    """
    if value is None:
        return None
    try:
        return [kind(s) for s in value.replace(",", " ").split()]
    except ValueError as err:
        raise typer.BadParameter(f"expected {what} separated by commas, got {value!r}", param_hint=hint) from err
