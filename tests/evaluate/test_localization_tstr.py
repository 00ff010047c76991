"""Localisation TSTR: conditions, paired comparisons, reuse of finished models, errors."""

from __future__ import annotations

import pytest
import torch

from synthmed.errors import DataError
from synthmed.evaluate.localization_tstr import LocalizationTSTRConfig, evaluate_localization_tstr
from synthmed.results import LocalizationTSTRResult, read_result


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _cfg(real, synthetic, out, **kw) -> LocalizationTSTRConfig:
    base = dict(real=real, synthetic=synthetic, out=out, steps=8, batch_size=4, n_boot=100, progress=False,
                model={"resolution": 32, "channels": [8, 16]}, low_fraction=0.3)
    base.update(kw)
    return LocalizationTSTRConfig(**base)


def test_every_condition_is_trained_tested_and_compared(phantom_dir, disc_masks, tmp_path):
    out = tmp_path / "tstr.json"
    result = evaluate_localization_tstr(_cfg(phantom_dir, disc_masks, out))
    assert list(result.conditions) == ["TRTR", "TSTR", "R+S", "lowR", "lowR+S"]
    pairs = result.training_pairs
    assert pairs["TSTR"]["real"] == 0 and pairs["TSTR"]["synthetic"] == 24  # all 24 disc pairs (fewer than real)
    assert pairs["R+S"]["real"] == pairs["TRTR"]["real"] > pairs["lowR"]["real"] == pairs["lowR+S"]["real"] > 0
    for m in result.conditions.values():
        assert 0.0 <= m["pixel_auroc"].value <= 1.0 and m["pixel_auroc"].n == result.n_test
    ratio = result.comparisons["TSTR/TRTR"]["pixel_auroc"]
    tstr, trtr = result.conditions["TSTR"]["pixel_auroc"].value, result.conditions["TRTR"]["pixel_auroc"].value
    assert ratio.value == pytest.approx(tstr / trtr) and ratio.ci95 is not None
    assert read_result(out, LocalizationTSTRResult).conditions.keys() == result.conditions.keys()
    # A rerun with the same settings reuses every trained model; other settings retrain.
    model = tmp_path / "tstr" / "TSTR" / "model" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    again = evaluate_localization_tstr(_cfg(phantom_dir, disc_masks, out))
    assert model.stat().st_mtime_ns == stamp
    assert again.conditions["TSTR"]["pixel_auroc"].value == tstr
    evaluate_localization_tstr(_cfg(phantom_dir, disc_masks, out, steps=9, conditions=["tstr"]))
    assert model.stat().st_mtime_ns != stamp


def test_synthetic_conditions_need_synthetic_data(phantom_dir, tmp_path):
    with pytest.raises(DataError, match="needs a synthetic dataset"):
        evaluate_localization_tstr(_cfg(phantom_dir, None, tmp_path / "x.json", conditions=["tstr"]))


def test_conditions_without_synthetic_pairs_are_reused_across_synthetic_sets(phantom_dir, disc_masks, tmp_path):
    from synthmed.testing.ldm import write_disc_dataset

    out = tmp_path / "tstr.json"
    evaluate_localization_tstr(_cfg(phantom_dir, disc_masks, out, conditions=["trtr", "tstr"]))
    trtr, tstr = (tmp_path / "tstr" / c / "model" / "model.safetensors" for c in ("TRTR", "TSTR"))
    stamps = trtr.stat().st_mtime_ns, tstr.stat().st_mtime_ns
    other = write_disc_dataset(tmp_path / "other", n=24, size=32, masks=True, seed=7)
    evaluate_localization_tstr(_cfg(phantom_dir, other, out, conditions=["trtr", "tstr"]))
    assert trtr.stat().st_mtime_ns == stamps[0]  # real pairs only: the same model
    assert tstr.stat().st_mtime_ns != stamps[1]  # other synthetic pairs: trained again
