"""Localiser checkpoints are safetensors + JSON: a pickled checkpoint is never loaded, resume stays exact."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file

from synthmed.localize.config import LocalizeTrainConfig
from synthmed.localize.scratch import BackbonePretrainConfig, pretrain_backbone
from synthmed.localize.train import train_localizer
from synthmed.testing.localize import TINY_TRAIN
from synthmed.utils.training_state import load_training_state


class _Payload:
    """A pickle that writes a marker file when it is loaded, as a hostile checkpoint would run a command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "step": 0, "payload": _Payload(marker)}, path)  # torch.save pickles it


def test_the_payload_runs_when_unpickled(tmp_path):
    """The planted file is a real exploit: loading it the old way runs it."""
    marker = tmp_path / "pwned"
    _plant(tmp_path / "last.pt", marker)
    torch.load(tmp_path / "last.pt", weights_only=False)  # noqa: S614 - demonstrates the attack
    assert marker.exists()


def test_localize_resume_never_loads_a_pickled_checkpoint(lesion_dir, tmp_path, caplog):
    out, marker = tmp_path / "m", tmp_path / "pwned-decoders"
    _plant(out / "checkpoints" / "last.pt", marker)
    _plant(out / "backbone" / "pretrain_checkpoint.pt", tmp_path / "pwned-backbone")
    opts = {**TINY_TRAIN, "epochs": 1, "scratch": {**TINY_TRAIN["scratch"], "epochs": 1},
            "data": lesion_dir, "out": out, "resume": True}
    with caplog.at_level(logging.WARNING):
        train_localizer(LocalizeTrainConfig.model_validate(opts))
    assert not marker.exists() and not (tmp_path / "pwned-backbone").exists()
    assert "never loaded" in caplog.text
    assert load_training_state(out / "checkpoints" / "last").meta["epoch"] == 1  # trained from the start


def test_an_interrupted_pretraining_resumes_from_its_state(lesion_dir, tmp_path, monkeypatch):
    import synthmed.localize.scratch as scratch

    saved = []
    real_save = scratch.save_training_state

    def save_then_stop(directory, **kwargs):
        real_save(directory, **kwargs)
        saved.append(load_training_state(directory).meta["epoch"])
        raise KeyboardInterrupt

    base = {"data": lesion_dir, **TINY_TRAIN["scratch"], "epochs": 2, "progress": False, "threads": 2,
            "out": tmp_path / "r"}
    monkeypatch.setattr(scratch, "save_training_state", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        pretrain_backbone(BackbonePretrainConfig.model_validate(base))
    monkeypatch.setattr(scratch, "save_training_state", real_save)
    assert saved == [1] and (tmp_path / "r" / "pretrain_checkpoint" / "tokenizer" / "tokenizer_config.json").is_file()
    pretrain_backbone(BackbonePretrainConfig.model_validate({**base, "resume": True}))
    pretrain_backbone(BackbonePretrainConfig.model_validate({**base, "out": tmp_path / "s"}))
    resumed, straight = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("r", "s"))
    for key, value in straight.items():
        assert torch.allclose(resumed[key], value, atol=1e-6), key


def test_a_truncated_state_is_a_clear_error(tmp_path):
    from synthmed.errors import CheckpointError
    from synthmed.utils.training_state import save_training_state

    state = tmp_path / "last"
    save_training_state(state, tensors={"w": {"a": torch.ones(3)}}, meta={"epoch": 1})
    (state / "w.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(CheckpointError, match="w.safetensors|cannot read"):
        load_training_state(state)
