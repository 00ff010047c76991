"""Resumable training state as safetensors + JSON: nothing that can run code is ever loaded.

A training-state directory holds one ``<group>.safetensors`` per named group of tensors
(model weights, decoders, trainable backbone parameters), ``optimizer.safetensors`` +
``optimizer.json`` for an optimizer's state, ``scheduler.json`` for a learning-rate scheduler
and ``state.json`` for the scalars (epoch, step, losses). It is written into a temporary
sibling and renamed into place, so a crash leaves either the previous state or the new one,
never a mixture. Pickled checkpoints (``torch.load(weights_only=False)``) are never read:
a pickle can call any function while it loads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from synthmed.errors import CheckpointError
from synthmed.utils.provenance import write_json_atomic
from synthmed.utils.tmpfiles import save_safetensors

STATE_FILE = "state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
SCHEDULER_FILE = "scheduler.json"


def split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer ``state_dict`` as tensors (for safetensors) and JSON-ready scalars."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            name = f"{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous().clone()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`split_optimizer_state`: a ``state_dict`` an optimizer can load."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):  # JSON has no tuples; Adam's betas must be one
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


@dataclass
class TrainingState:
    """What :func:`load_training_state` read back."""

    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _contiguous(group: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in group.items()}


def save_training_state(directory: str | Path, *, tensors: dict[str, dict[str, torch.Tensor]],
                        meta: dict[str, Any], optimizer: torch.optim.Optimizer | None = None,
                        scheduler: Any = None, extra: Callable[[Path], None] | None = None) -> Path:
    """Write a training state to ``directory``, replacing the previous one atomically.

    Args:
        directory: The state directory (created; an existing one is replaced only once the new
            one is complete).
        tensors: Named groups of tensors, one safetensors file each.
        meta: JSON-serialisable scalars (epoch, step, losses ...).
        optimizer: Saved as tensors + JSON when given.
        scheduler: Its ``state_dict()`` is saved as JSON when given.
        extra: Called with the temporary directory to add further files (e.g. a tokenizer's
            ``save_pretrained``) before it is renamed into place.
    """
    final = Path(directory)
    tmp = final.with_name(f".{final.name}.tmp")
    old = final.with_name(f".{final.name}.old")
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    for name, group in tensors.items():
        save_safetensors(_contiguous(group), str(tmp / f"{name}.safetensors"))
    if optimizer is not None:
        opt_tensors, opt_meta = split_optimizer_state(optimizer.state_dict())
        save_safetensors(opt_tensors, str(tmp / OPTIMIZER_TENSORS))
        write_json_atomic(tmp / OPTIMIZER_META, opt_meta)
    if scheduler is not None:
        write_json_atomic(tmp / SCHEDULER_FILE, scheduler.state_dict())
    if extra is not None:
        extra(tmp)
    write_json_atomic(tmp / STATE_FILE, {"groups": sorted(tensors), **meta})  # written last: marks it complete
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def has_training_state(directory: str | Path) -> bool:
    """Whether ``directory`` holds a complete state written by :func:`save_training_state`."""
    return (Path(directory) / STATE_FILE).is_file()


def load_training_state(directory: str | Path) -> TrainingState:
    """Read a state written by :func:`save_training_state` (safetensors and JSON only).

    Raises:
        CheckpointError: the directory is incomplete or a file in it cannot be read.
    """
    path = Path(directory)
    try:
        meta = json.loads((path / STATE_FILE).read_text())
        groups = {name: load_file(str(path / f"{name}.safetensors")) for name in meta.pop("groups", [])}
        optimizer = None
        if (path / OPTIMIZER_META).is_file():
            optimizer = join_optimizer_state(load_file(str(path / OPTIMIZER_TENSORS)),
                                             json.loads((path / OPTIMIZER_META).read_text()))
        scheduler = None
        if (path / SCHEDULER_FILE).is_file():
            scheduler = json.loads((path / SCHEDULER_FILE).read_text())
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise CheckpointError(f"{path}: cannot read the training state ({err}); "
                                 f"start again with --overwrite") from err
    return TrainingState(tensors=groups, optimizer=optimizer, scheduler=scheduler, meta=meta)


def warn_if_pickled(path: str | Path, logger: Any) -> None:
    """Log that a pickled checkpoint from an older synthmed at ``path`` is ignored, never loaded."""
    p = Path(path)
    if p.exists():
        logger.warning("%s is a pickled checkpoint from an older synthmed; it is never loaded (a pickle can run "
                       "code). Training starts from the beginning; delete the file to silence this.", p)
