"""An append-only on-disk cache of model replies.

One JSON object per line, ``{"key": ..., "value": ...}``, appended with a single ``write``
and fsynced, so a job killed at any moment leaves a readable cache (a torn last line is
ignored on reading). Keys are SHA-256 digests of what decides the reply — for captions the
image's pixels, the model and the prompt version — so a rerun or a resumed job asks the
model only about what it has not answered yet. Nothing secret is stored: no API key, no
server address.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def digest(*parts: str | bytes) -> str:
    """SHA-256 hex digest of the parts, each length-prefixed (so ("ab", "c") != ("a", "bc"))."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode("utf-8") if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """Digest of an image's pixels, shape and dtype (independent of how the file was encoded)."""
    a = np.ascontiguousarray(array)
    return digest(str(a.dtype), repr(a.shape), a.tobytes())


class ReplyCache:
    """Key -> JSON value, persisted in a JSONL file (``path=None`` keeps it in memory only)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._data: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.hits = 0
        if self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        bad = 0
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                    self._data[obj["key"]] = obj["value"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    bad += 1
        if bad:
            logger.warning("%s: ignored %d unreadable cache lines (an interrupted write)", self.path, bad)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self.hits += 1
            return value

    def put(self, key: str, value: Any) -> None:
        line = json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n"
        with self._lock:
            self._data[key] = value
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and self.path.stat().st_size:
                with self.path.open("rb") as fh:  # a torn last line must not swallow this one
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = "\n" + line
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
