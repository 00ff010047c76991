"""Temporary files for atomic writes that end up with the permissions the user's umask asks for.

``tempfile.mkstemp`` creates files with mode 0600 whatever the umask; a file renamed into place
from one would be readable by its owner only, unlike every other file the user creates.
"""

from __future__ import annotations

import os
import stat
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


def apply_umask(path: str | Path) -> None:
    """Give what a library wrote through its own temporary files the mode the umask asks for.

    safetensors writes atomically through a 0600 temporary file, and so do the
    ``save_pretrained`` of diffusers and transformers and diffusers' LoRA saving: their
    weights come out readable by their owner only. ``path`` is a file or a folder (every
    file under it); only files with that 0600 signature are changed, to 0666 less the umask.
    """
    target = 0o666 & ~current_umask()
    root = Path(path)
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    for f in files:
        mode = stat.S_IMODE(f.lstat().st_mode)
        if mode == 0o600 and target != 0o600 and not f.is_symlink():
            os.chmod(f, target)


def save_safetensors(tensors: dict, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` whose file gets the umask's mode (see :func:`apply_umask`)."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    apply_umask(path)
