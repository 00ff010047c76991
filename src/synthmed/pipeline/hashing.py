"""Content hashes of stage inputs, so that a stage reruns exactly when what it reads changed.

A file hashes by its bytes (SHA-256); a directory by the sorted relative names and bytes of
every file under it; a dataset directory by :func:`synthmed.data.dataset.hash_dataset`
(the rows and the files they name). Hashing a large model folder once is slow, so file digests
are cached by (path, size, mtime) in the run directory, keyed by a hash of the path: the cache
never stores a source path (a folder may be named after a patient).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from synthmed.utils.builtin import is_builtin, resolve_builtin
from synthmed.utils.provenance import hash_file, write_json_atomic

CACHE_FILE = "hash-cache.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Directories skipped when hashing a folder: caches and checkpoints are not inputs.
_SKIP_DIRS = {".synthmed", "checkpoints", "cache", "logs", "__pycache__", ".git"}


class HashCache:
    """File digests keyed by (SHA-256 of the absolute path, size, mtime_ns), saved in a JSON file."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        if path is not None and path.is_file():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                self.entries = {}
        stale = [k for k in self.entries if not _HEX64.fullmatch(k)]  # keyed by path by an earlier version
        for k in stale:
            del self.entries[k]
        self.dirty = bool(stale)

    def file(self, path: Path) -> str:
        st = path.stat()
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()
        hit = self.entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = hash_file(path)
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.path is not None and self.dirty:
            write_json_atomic(self.path, self.entries)
            self.dirty = False


def hash_path(path: Path, cache: HashCache | None = None) -> str:
    """A content hash of a file or directory (see the module docstring)."""
    cache = cache or HashCache(None)
    if path.is_file():
        return cache.file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part in _SKIP_DIRS or part.startswith(".tmp") for part in rel.parts):
            continue
        h.update(rel.as_posix().encode())
        h.update(cache.file(f).encode())
    return h.hexdigest()


#: Prefixes of model references whose rest is a hub id or a local folder (``hf:./my-vlm``).
_MODEL_PREFIXES = ("hf:",)


def reference_target(value: str) -> str:
    """The path or hub id a setting refers to: ``hf:<x>`` refers to ``x``; anything else to itself."""
    for prefix in _MODEL_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def hash_input(value: Any, base: Path, cache: HashCache | None = None) -> str | None:
    """The content hash of a setting that names a file or directory, or None if it names none.

    ``hf:<folder>`` hashes the folder, and ``builtin:<name>`` the model shipped in the package
    (a judge, an autoencoder; so a new release with other weights reruns the stage). Values that are not existing
    paths (a hub id such as ``runwayml/stable-diffusion-v1-5``, ``mask``, ``api:<model>``)
    hash as their text in the stage key, which is enough: the text is the identity.
    """
    if not isinstance(value, str | Path) or not str(value):
        return None
    if is_builtin(value):
        from synthmed.errors import DataError

        try:
            return hash_path(resolve_builtin(value), cache)
        except DataError:  # an unknown name: the stage itself will say so
            return None
    p = Path(reference_target(value) if isinstance(value, str) else value)
    p = p if p.is_absolute() else base / p
    if not p.exists():
        return None
    return hash_path(p, cache)


def stage_key(kind: str, settings: dict[str, Any], upstream: dict[str, str], inputs: dict[str, str | None],
              out_dir: str) -> str:
    """The identity of one stage execution: kind, settings, upstream keys, input hashes, output location."""
    blob = json.dumps({"kind": kind, "settings": settings, "upstream": upstream, "inputs": inputs, "out": out_dir},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
