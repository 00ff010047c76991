"""The stage registry: stage kinds by name, each a typed config plus the library function it calls.

A stage kind wraps one public library function and its config class, both named by import
path (``"synthmed.train.ldm:train_ldm"``) so that ``synthmed run --check`` imports nothing
heavy and a stage whose code is not installed yet is refused with a clear message instead of
breaking the whole registry. Third-party code adds stages with :func:`register`.
"""

from __future__ import annotations

from synthmed.errors import ConfigError
from synthmed.pipeline.stage_def import StageContext, StageDef, StageNotAvailable

__all__ = ["StageContext", "StageDef", "StageNotAvailable", "get_stage", "register", "stage_kinds"]


_REGISTRY: dict[str, StageDef] = {}
_BUILTINS_LOADED = False


def register(stage: StageDef, *, replace: bool = False) -> StageDef:
    """Add a stage kind (``replace`` to override a built-in one)."""
    _ensure_builtins()
    if stage.kind in _REGISTRY and not replace:
        raise ConfigError(f"stage kind '{stage.kind}' is already registered")
    _REGISTRY[stage.kind] = stage
    return stage


def stage_kinds() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def get_stage(kind: str) -> StageDef:
    """The registered stage ``kind``.

    Raises:
        ConfigError: an unknown kind, listing the known ones.
    """
    _ensure_builtins()
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown stage kind '{kind}'; known kinds: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind]


def _ensure_builtins() -> None:
    """Add the built-in kinds once, before the first lookup or registration."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    from synthmed.pipeline.stages import BUILTIN_STAGES

    _BUILTINS_LOADED = True
    for stage in BUILTIN_STAGES:
        _REGISTRY[stage.kind] = stage
