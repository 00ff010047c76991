"""Choosing the torch device a job runs on."""

from __future__ import annotations

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
