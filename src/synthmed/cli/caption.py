"""``synthmed caption``: write structured findings and prompt text into a dataset."""

from __future__ import annotations


def caption_command() -> None:
    """Caption a dataset directory (work in progress)."""
    raise NotImplementedError
