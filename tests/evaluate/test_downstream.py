import json
import shutil

import numpy as np
import pytest
import torch

from synthmed.data.dataset import read_records, write_records
from synthmed.errors import DataError
from synthmed.evaluate.downstream import DownstreamConfig, evaluate_downstream
from synthmed.evaluate.downstream_report import TrainedModel, downstream_tables, summarise
from synthmed.testing.standin import make_standin


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return make_standin(tmp_path_factory.mktemp("syn") / "syn", n=32, size=96, seed=9)


def _quick(tmp_path, real, synthetic, **kw):
    base = dict(real=real, synthetic=synthetic, out=tmp_path / "metrics.json", preset="quick", image_size=32,
                epochs=1, seeds=[0, 1], bootstrap=20, ratios=[0.5, 1.0], low_data_fraction=0.3, threads=1)
    return DownstreamConfig(**{**base, **kw})


def test_protocol_runs_every_condition_and_writes_metrics(tmp_path, phantom_dir, standin):
    cfg = _quick(tmp_path, phantom_dir, standin)
    report = evaluate_downstream(cfg, progress=False)
    n_train = sum(r.split == "train" for r in read_records(phantom_dir))
    c = report.conditions
    assert list(c) == ["TRTR", "TSTR", "R+Sx0.5", "R+Sx1", "lowR", "lowR+S"]
    assert (c["TRTR"].n_real, c["TRTR"].n_synthetic) == (n_train, 0)
    assert (c["TSTR"].n_real, c["TSTR"].n_synthetic) == (0, min(n_train, 32))
    assert c["R+Sx0.5"].n_synthetic == round(0.5 * n_train)
    assert 0 < c["lowR"].n_real < n_train and c["lowR+S"].n_real == c["lowR"].n_real
    for cond in c.values():
        lo, hi = cond.ci["accuracy"]
        assert lo <= cond.mean["accuracy"] + 1e-9 and cond.mean["accuracy"] <= hi + 1e-9
        assert len(cond.per_seed) == 2
    assert set(report.comparisons) == {"TSTR/TRTR", "R+Sx0.5 - TRTR", "R+Sx1 - TRTR", "low-data gain (lowR+S - lowR)"}
    saved = json.loads(cfg.out.read_text())
    assert saved["data"]["real_hash"] and saved["data"]["synthetic_hash"]
    assert saved["test"]["patients"] == report.n_test_patients
    assert saved["bootstrap"]["unit"] == "patient"
    assert saved["classifier"]["model"]["image_size"] == 32
    assert saved["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # device "auto"
    assert len(downstream_tables(report)) == 2


def test_test_patients_must_be_held_out(tmp_path, phantom_dir, standin):
    root = tmp_path / "leaky"
    shutil.copytree(phantom_dir, root)
    recs = read_records(root)
    train_patient = next(r.patient_id for r in recs if r.split == "train")
    i = next(i for i, r in enumerate(recs) if r.split == "test")
    recs[i] = recs[i].model_copy(update={"patient_id": train_patient})
    write_records(root, recs)
    with pytest.raises(DataError, match="held out by patient"):
        evaluate_downstream(_quick(tmp_path, root, standin), progress=False)


def test_multiclass_needs_tumour_types(tmp_path, phantom_dir):
    with pytest.raises(DataError, match="tumor_type"):
        evaluate_downstream(_quick(tmp_path, phantom_dir, None, task="multiclass"), progress=False)


def test_summary_ratios_and_gains_with_paired_intervals():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    patients = [f"p{i // 4}" for i in range(120)]
    onehot = np.eye(2)[y]
    noisy = np.abs(onehot + rng.normal(0, 0.45, onehot.shape)) + 1e-6
    noisy /= noisy.sum(1, keepdims=True)
    coin = rng.random((120, 1))
    chance = np.hstack([coin, 1 - coin])
    runs = [TrainedModel("TRTR", s, 100, 0, onehot, 1, 0.0) for s in (0, 1)]
    runs += [TrainedModel("TSTR", s, 0, 100, chance, 1, 0.0) for s in (0, 1)]
    runs += [TrainedModel("lowR", s, 10, 0, chance, 1, 0.0) for s in (0, 1)]
    runs += [TrainedModel("lowR+S", s, 10, 100, noisy, 1, 0.0) for s in (0, 1)]
    report = summarise(runs, y, patients, n_boot=300)
    ratio = report.comparisons["TSTR/TRTR"]
    assert ratio.value["accuracy"] == pytest.approx(report.conditions["TSTR"].mean["accuracy"])
    assert ratio.ci["accuracy"][1] < 0.75  # chance-level TSTR is clearly below TRTR
    gain = report.comparisons["low-data gain (lowR+S - lowR)"]
    assert gain.value["accuracy"] > 0.2 and gain.ci["accuracy"][0] > 0
    assert report.conditions["TRTR"].ci["auroc"] == (1.0, 1.0)
