"""Validation loss on held-out rows, keeping the best weights, and offset noise (LoRA on a tiny SD pipeline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from synthmed.data.dataset import read_records, write_records
from synthmed.errors import ConfigError, DataError
from synthmed.testing.pipelines import tiny_lora_config as lora_config
from synthmed.train.finetune import train_lora
from synthmed.train.finetune.core import BestWeights


@pytest.fixture(scope="module")
def split_data(ft_data, tmp_path_factory) -> Path:
    """The fine-tuning toy data with its last 3 rows moved to split val."""
    root = tmp_path_factory.mktemp("val") / "data"
    shutil.copytree(ft_data, root)
    rows = read_records(root)
    write_records(root, [r.model_copy(update={"split": "val" if i >= len(rows) - 3 else "train"})
                         for i, r in enumerate(rows)])
    return root


def _summary(out: Path) -> dict:
    return json.loads((out / "synthmed.json").read_text())


def test_validation_loss_is_logged_and_the_best_step_is_exported(tiny_sd, split_data, tmp_path):
    best = train_lora(lora_config(tiny_sd, split_data, tmp_path / "best", max_steps=8, val_split="val",
                                  val_loss_every=2, keep="best", optim={"lr": 0.3}))
    s = _summary(best)
    steps = [step for step, _ in s["val_losses"]]
    losses = [loss for _, loss in s["val_losses"]]
    assert steps == [2, 4, 6, 8] and s["val_rows"] == 3 and all(v > 0 for v in losses)
    assert s["exported_step"] == steps[losses.index(min(losses))]
    record = json.loads((best / "best" / "best.json").read_text())
    assert record["step"] == s["exported_step"] and record["loss"] == min(losses)
    # The same run keeping the last weights scores the same losses (fixed timesteps and noise) and, when the
    # best step is not the last, exports other weights.
    last = train_lora(lora_config(tiny_sd, split_data, tmp_path / "last", max_steps=8, val_split="val",
                                  val_loss_every=2, optim={"lr": 0.3}))
    assert _summary(last)["val_losses"] == s["val_losses"] and _summary(last)["exported_step"] == 8
    a, b = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (best, last))
    same = all(torch.equal(a[k], b[k]) for k in a)
    assert same == (s["exported_step"] == 8)


def test_best_weights_round_trip_and_survive_a_resume(tmp_path):
    module = torch.nn.Linear(3, 2)
    module.bias.requires_grad_(False)
    kept = BestWeights(tmp_path, "d", resume=False)
    assert kept.offer(module, 4, 0.5) and not kept.offer(module, 6, 0.7)
    saved = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(1.0)
    kept.restore(module)
    assert torch.equal(module.weight, saved)
    assert (BestWeights(tmp_path, "d", resume=True).step, BestWeights(tmp_path, "other", resume=True).step) == (4, None)


def test_offset_noise_changes_training_and_zero_changes_nothing(tiny_sd, ft_data, tmp_path):
    runs = {name: load_file(str(train_lora(lora_config(tiny_sd, ft_data, tmp_path / name, max_steps=2,
                                                       optim={"noise_offset": offset}))
                                / "pytorch_lora_weights.safetensors"))
            for name, offset in (("plain", 0.0), ("zero", 0.0), ("offset", 0.1))}
    assert all(torch.equal(runs["plain"][k], runs["zero"][k]) for k in runs["plain"])
    assert not all(torch.equal(runs["plain"][k], runs["offset"][k]) for k in runs["plain"])


def test_bad_validation_settings_are_refused(tiny_sd, ft_data, split_data, tmp_path):
    with pytest.raises(ValidationError, match="val_split"):
        lora_config(tiny_sd, ft_data, tmp_path / "a", keep="best")
    with pytest.raises(ValidationError, match="training split"):
        lora_config(tiny_sd, ft_data, tmp_path / "a", val_split="train")
    with pytest.raises(DataError, match="test"):
        train_lora(lora_config(tiny_sd, split_data, tmp_path / "b", val_split="test"))
    from synthmed.train.finetune import TextualInversionConfig, train_textual_inversion

    cfg = TextualInversionConfig.model_validate({
        "base": str(tiny_sd), "data": str(split_data), "out": str(tmp_path / "ti"), "resolution": 32, "max_steps": 2,
        "concepts": [{"token": "<tumour>", "init_word": "tumour"}], "progress": False, "tensorboard": False,
        "val_split": "val"})
    with pytest.raises(ConfigError, match="no validation loss"):
        train_textual_inversion(cfg)
