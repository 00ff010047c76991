"""The judges shipped with synthmed: load by name and read findings off phantom images they never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthmed.classify.augment import coarse_noise
from synthmed.classify.data import load_images
from synthmed.data.dataset import ImageDataset
from synthmed.errors import DataError
from synthmed.evaluate.adherence import AdherenceConfig, evaluate_adherence
from synthmed.judge import FindingsJudge, builtin_judges, resolve_judge
from synthmed.testing.standin import make_standin, set_requested

BUILTINS = ("phantom-128", "phantom-128-robust")


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_judge_loads_by_name_with_its_real_test_accuracy(name):
    assert name in builtin_judges()
    judge = FindingsJudge.from_pretrained(f"builtin:{name}")
    assert judge.config.image_size == 128 and judge.config.map_stride == 2
    acc = judge.real_test_metrics["accuracy"]
    assert acc["tumor_present"] >= 0.95 and acc["hemisphere"] >= 0.95  # what the docs report
    assert resolve_judge("runs/j") == Path("runs/j")  # a directory passes through


def test_unknown_builtin_judge_lists_the_available_ones():
    with pytest.raises(DataError, match="available: builtin:phantom-128"):
        FindingsJudge.from_pretrained("builtin:nope")


@pytest.fixture(scope="module")
def new_phantom(tmp_path_factory):
    # Phantom seed 4242 is not the judges' training data (seed 0).
    return make_standin(tmp_path_factory.mktemp("judge") / "fake", n=48, size=128, seed=4242, requested="truth",
                        workers=0)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_judge_scores_a_new_phantom(new_phantom, name):
    judge = f"builtin:{name}"
    right = evaluate_adherence(AdherenceConfig(fake=new_phantom, judge=judge), progress=False)
    assert right.agreements["tumor_present"].accuracy >= 0.9 and right.agreements["hemisphere"].accuracy >= 0.9
    set_requested(new_phantom, "flip-hemisphere")
    try:
        wrong = evaluate_adherence(AdherenceConfig(fake=new_phantom, judge=judge), progress=False)
    finally:
        set_requested(new_phantom, "truth")
    assert wrong.agreements["hemisphere"].accuracy <= 0.1


def test_robust_judge_does_not_read_noise_as_a_tumour(new_phantom):
    ds = ImageDataset(new_phantom)
    healthy = [r for r in ds.records if not r.findings.tumor_present]
    x = load_images(ds, healthy, 128, progress=False).float()
    noisy = (x + 0.08 * coarse_noise(len(x), 128, 128, 1, torch.Generator().manual_seed(0))).clamp(0, 1)
    called = {name: np.mean([bool(f.tumor_present) for f in
                             FindingsJudge.from_pretrained(f"builtin:{name}").predict_findings(noisy)])
              for name in BUILTINS}
    # The first judge, trained without blur/noise augmentation, calls most noisy healthy slices "tumour".
    assert called["phantom-128"] > 0.5
    assert called["phantom-128-robust"] <= 0.15
