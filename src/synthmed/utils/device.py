"""Choosing the torch device a job runs on, and its CPU threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from synthmed.errors import ConfigError


def resolve_device(device: str | None) -> torch.device:
    """``"auto"`` or None -> CUDA when available, else CPU; anything else as given.

    Raises:
        ConfigError: ``device`` is not a torch device name.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device {device!r} is not a torch device ({err})") from err


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on ``n`` torch CPU threads (None or 0: leave them), then restore the previous number."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
