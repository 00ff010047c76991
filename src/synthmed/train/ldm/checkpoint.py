"""Training checkpoints: exact, atomic, safetensors for every tensor.

A checkpoint is a directory ``step-00001234/`` holding

=========================  =====================================================
``model.safetensors``      the trained module's weights (or only its trainable parameters, for adapters)
``ema.safetensors``        the EMA weights (when EMA is on)
``optimizer.safetensors``  every tensor of the optimizer state (``"{param}.{key}"``)
``optimizer.json``         the optimizer's param groups and non-tensor state
``scheduler.json``         the learning-rate scheduler's ``state_dict``
``rng-{rank}.safetensors`` / ``rng-{rank}.json``  torch, CUDA, NumPy and Python RNG states
``state.json``             step, planned total steps, elapsed time, config digest
=========================  =====================================================

It is written into ``.tmp-step-…`` and renamed into place, so a killed job leaves either
a complete checkpoint or none; nothing is ever read with pickle.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from synthmed.errors import CheckpointError
from synthmed.utils.provenance import write_json_atomic
from synthmed.utils.tmpfiles import save_safetensors
from synthmed.utils.training_state import join_optimizer_state, split_optimizer_state

STATE_FILE = "state.json"


@dataclass
class CheckpointState:
    """The scalar part of a checkpoint."""

    step: int
    total_steps: int | None
    elapsed_s: float
    digest: str
    extra: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary directories ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


# -- RNG --------------------------------------------------------------------------------

def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["numpy.keys"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
    py_state = random.getstate()
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


# -- save / load ----------------------------------------------------------------------------

def begin_checkpoint(root: str | Path, step: int) -> Path:
    """Create the empty temporary directory a checkpoint of ``step`` is written into (main process)."""
    tmp = Path(root) / f".tmp-{checkpoint_name(step)}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_rng(tmp: Path, rank: int) -> None:
    """Save this process's RNG states into a checkpoint being written (every process)."""
    tensors, meta = _rng_state()
    save_safetensors(tensors, str(tmp / f"rng-{rank}.safetensors"))
    write_json_atomic(tmp / f"rng-{rank}.json", meta)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``model`` that require gradients (LoRA matrices, new embedding rows)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.named_parameters() if v.requires_grad}


def write_main(tmp: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               ema_state: dict[str, torch.Tensor] | None, state: CheckpointState,
               trainable_only: bool = False) -> None:
    """Save weights, optimizer, scheduler and step into a checkpoint being written (main process).

    With ``trainable_only`` only the parameters that require gradients are saved: a LoRA
    checkpoint of SD 1.5 then holds megabytes, not the frozen gigabytes of its base.
    """
    if trainable_only:
        weights = trainable_state(model)
    else:
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_safetensors(weights, str(tmp / "model.safetensors"))
    if ema_state is not None:
        save_safetensors({k: v.contiguous() for k, v in ema_state.items()}, str(tmp / "ema.safetensors"))
    tensors, meta = split_optimizer_state(optimizer.state_dict())
    save_safetensors(tensors, str(tmp / "optimizer.safetensors"))
    write_json_atomic(tmp / "optimizer.json", meta)
    write_json_atomic(tmp / "scheduler.json", scheduler.state_dict())
    write_json_atomic(tmp / STATE_FILE, {"step": state.step, "total_steps": state.total_steps,
                                         "elapsed_s": state.elapsed_s, "digest": state.digest,
                                         "extra": state.extra})


def commit_checkpoint(tmp: Path, keep: int) -> Path:
    """Rename a finished temporary checkpoint into place and drop all but the newest ``keep``."""
    final = tmp.parent / tmp.name.removeprefix(".tmp-")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(tmp.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(path: str | Path) -> CheckpointState:
    data = json.loads((Path(path) / STATE_FILE).read_text())
    return CheckpointState(step=int(data["step"]), total_steps=data.get("total_steps"),
                           elapsed_s=float(data.get("elapsed_s", 0.0)), digest=data.get("digest", ""),
                           extra=data.get("extra", {}))


def load_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    rank: int = 0, expected_digest: str | None = None, trainable_only: bool = False
                    ) -> tuple[CheckpointState, dict[str, torch.Tensor] | None]:
    """Restore a checkpoint into ``model``, ``optimizer`` and ``scheduler`` and the RNGs.

    With ``trainable_only`` the checkpoint holds only the trainable parameters (see
    :func:`write_main`); every one of them must be present, the frozen rest is left as is.

    Returns:
        The scalar state and the EMA weights (None when the checkpoint has none).

    Raises:
        CheckpointError: the checkpoint was written by a different configuration, or is incomplete.
    """
    path = Path(path)
    state = read_state(path)
    if expected_digest is not None and state.digest != expected_digest:
        raise CheckpointError(f"{path}: written by a different training configuration (digest {state.digest[:12]} "
                              f"!= {expected_digest[:12]}); use the original config or start a new --out")
    try:
        weights = load_file(str(path / "model.safetensors"))
        if trainable_only:
            wanted = {k for k, v in model.named_parameters() if v.requires_grad}
            missing = sorted(wanted - set(weights))
            if missing:
                raise KeyError(f"{len(missing)} trainable parameters missing, e.g. {missing[0]!r}")
            model.load_state_dict(weights, strict=False)
        else:
            model.load_state_dict(weights)
        meta = json.loads((path / "optimizer.json").read_text())
        optimizer.load_state_dict(join_optimizer_state(load_file(str(path / "optimizer.safetensors")), meta))
        scheduler.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    except (OSError, KeyError, RuntimeError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"{path}: cannot restore ({err})") from err
    rng = path / f"rng-{rank}.safetensors"
    if rng.is_file():
        _set_rng_state(load_file(str(rng)), json.loads((path / f"rng-{rank}.json").read_text()))
    ema_file = path / "ema.safetensors"
    ema = load_file(str(ema_file)) if ema_file.is_file() else None
    return state, ema
