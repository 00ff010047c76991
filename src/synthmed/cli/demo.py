"""``synthmed demo``: the whole pipeline on the built-in benchmark, offline, on a CPU."""

from __future__ import annotations


def demo_command() -> None:
    """Run the offline demo (work in progress)."""
    raise NotImplementedError
