"""Output directories: one writer at a time, and ``--overwrite`` removes only what synthmed wrote.

Every command that writes a dataset, a model or a run directory holds an exclusive OS lock
(``flock``) on ``DIR/.synthmed/lock`` while it runs; a second process that tries to write the
same directory stops at once with "DIR is being written by process PID". The lock goes with
the process, so a killed writer never leaves a stale lock behind. Within one process the lock
is re-entrant (a pipeline stage may open a dataset its own run is writing).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from synthmed.errors import ConfigError

LOCK_FILE = ".synthmed/lock"

_held: dict[str, list[int]] = {}  # resolved directory -> [fd, depth]
_guard = threading.Lock()


class DirectoryBusyError(ConfigError):
    """Another process is writing the directory."""


def _lock_path(directory: Path) -> Path:
    return directory / LOCK_FILE


def acquire(directory: str | Path, *, create: bool = True) -> Path:
    """Take the directory's write lock; see :func:`release`.

    Args:
        directory: The directory (created if missing, unless ``create`` is False: then a
            missing directory is not locked, and the caller reports it missing).

    Raises:
        DirectoryBusyError: another process holds it.
    """
    import fcntl

    directory = Path(directory).resolve()
    key = str(directory)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return directory
        if not create and not directory.is_dir():
            return directory
        path = _lock_path(directory)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DirectoryBusyError(f"{directory} is being written by process {holder}; wait for it to finish "
                                     "or choose another output directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = [fd, 1]
    return directory


def release(directory: str | Path) -> None:
    """Give back a lock taken with :func:`acquire` (the last release in the process unlocks it)."""
    key = str(Path(directory).resolve())
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            os.close(entry[0])  # closing the descriptor drops the flock


@contextlib.contextmanager
def exclusive(directory: str | Path, *, create: bool = True) -> Iterator[Path]:
    """Hold the directory's write lock for the ``with`` block (see :func:`acquire`)."""
    path = acquire(directory, create=create)
    try:
        yield path
    finally:
        release(path)


F = TypeVar("F", bound=Callable[..., Any])


def _is_main_process() -> bool:
    """False in the non-zero ranks of a distributed launch (rank 0 holds the lock for the run)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _depth(key: str) -> int:
    with _guard:
        return _held[key][1] if key in _held else 0


def writes_to(directory_of: Callable[..., str | Path | None]) -> Callable[[F], F]:
    """Scope the write lock of ``directory_of(*args, **kwargs)`` to the decorated function.

    An existing directory is locked before the function runs; a new one is locked by whatever
    creates it inside (:func:`prepare_out_dir`, :class:`~synthmed.data.DatasetWriter`), so a
    call that fails its checks writes nothing. Every lock taken in the scope is given back when
    the function returns or raises.

    Example:
        >>> @writes_to(first_argument("config", "out"))      # doctest: +SKIP
        ... def train(config): ...
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            directory = directory_of(*args, **kwargs)
            if directory is None or not _is_main_process():
                return fn(*args, **kwargs)
            key = str(Path(directory).resolve())
            before = _depth(key)
            acquire(directory, create=False)
            try:
                return fn(*args, **kwargs)
            finally:
                while _depth(key) > before:
                    release(key)

        return locked  # type: ignore[return-value]

    return decorate


def first_argument(name: str, attribute: str | None = None) -> Callable[..., Any]:
    """A :func:`writes_to` getter: the first argument (or keyword ``name``), or its ``attribute``."""

    def get(*args: Any, **kwargs: Any) -> Any:
        value = args[0] if args else kwargs.get(name)
        return getattr(value, attribute, None) if attribute and value is not None else value

    return get


def make_locked(directory: str | Path) -> Path:
    """Create ``directory`` (with parents) and take its write lock, held as :func:`prepare_out_dir`'s is."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    acquire(path)
    return path


def is_empty(directory: Path) -> bool:
    """Whether ``directory`` holds nothing but synthmed's own lock folder."""
    return not any(p.name != ".synthmed" for p in directory.iterdir())


def prepare_out_dir(out: str | Path, *, resume: bool, overwrite: bool, owned: Iterable[str]) -> None:
    """Check an output directory and, with ``overwrite``, remove what a run of this kind writes there.

    Args:
        out: The output directory (created).
        resume: Continue the run already in it.
        overwrite: Start again: remove the names in ``owned`` (files or folders synthmed writes),
            and nothing else, so a user's own files in the directory survive.
        owned: The top-level names a run of this kind writes.

    Raises:
        ConfigError: ``out`` is a file, or is not empty and neither ``resume`` nor ``overwrite`` is set.
        DirectoryBusyError: another process is writing ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: --out exists and is not a directory")
    if out.exists():
        acquire(out)  # before anything is removed
    if out.exists() and not is_empty(out):
        if overwrite:
            for name in owned:
                p = out / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                elif p.exists() or p.is_symlink():
                    p.unlink()
        elif not resume:
            raise ConfigError(f"{out}: output directory is not empty; pass --resume to continue the run in it, "
                              "--overwrite to start again, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    acquire(out)  # held until the enclosing writes_to scope ends (or the process exits)
