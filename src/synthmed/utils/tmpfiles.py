"""Temporary files for atomic writes that end up with the permissions the user's umask asks for.

``tempfile.mkstemp`` creates files with mode 0600 whatever the umask; a file renamed into place
from one would be readable by its owner only, unlike every other file the user creates.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mkstemp_for(directory: str | Path, *, prefix: str = ".tmp-", suffix: str = "") -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``directory``, its mode set to 0666 less the umask (as ``open`` would)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    os.fchmod(fd, 0o666 & ~current_umask())
    return fd, tmp
