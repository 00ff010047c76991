"""Where synthmed keeps downloaded weights and cached features.

* ``SYNTHMED_CACHE`` — the root (default ``~/.cache/synthmed``);
* ``SYNTHMED_FEATURE_CACHE`` — cached real-set features (default ``<root>/features``);
* ``SYNTHMED_WEIGHTS_DIR`` — downloaded weights (default ``<root>/weights``);
* ``SYNTHMED_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) — never download anything.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SYNTHMED_CACHE`` or ``~/.cache/synthmed``."""
    return Path(os.environ.get("SYNTHMED_CACHE") or Path.home() / ".cache" / "synthmed").expanduser()


def feature_cache_dir() -> Path:
    """``$SYNTHMED_FEATURE_CACHE`` or ``<cache root>/features``."""
    env = os.environ.get("SYNTHMED_FEATURE_CACHE")
    return Path(env).expanduser() if env else cache_root() / "features"


def weights_dir() -> Path:
    """``$SYNTHMED_WEIGHTS_DIR`` or ``<cache root>/weights``."""
    env = os.environ.get("SYNTHMED_WEIGHTS_DIR")
    return Path(env).expanduser() if env else cache_root() / "weights"


def offline() -> bool:
    """Whether downloads are forbidden by the environment."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("SYNTHMED_OFFLINE", "HF_HUB_OFFLINE"))
