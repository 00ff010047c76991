"""Scoring a reader study against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from synthmed.errors import DataError
from synthmed.results import StudyResult, read_result
from synthmed.study import score_study
from synthmed.study.layout import ImageFormat, KeyEntry, StudyKey, StudySettings
from synthmed.study.stats import fleiss_kappa, two_level_bootstrap
from synthmed.study.store import AnswerStore

FMT = ImageFormat(width=8, height=8, channels=1, bits=8)


def test_fleiss_kappa_wikipedia_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_kappa_edges():
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert np.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))  # one category only: chance agreement is 1
    assert np.isnan(fleiss_kappa(np.array([[1, 0], [0, 1]])))  # no item with two ratings
    # items with one rating are left out; others keep their own number of raters
    a = fleiss_kappa(np.array([[2, 0], [1, 1], [0, 3], [1, 0]]))
    assert a == pytest.approx(fleiss_kappa(np.array([[2, 0], [1, 1], [0, 3]])))


def test_two_level_bootstrap_resamples_readers_and_images():
    ratings = np.arange(12, dtype=float).reshape(3, 4)
    reps = two_level_bootstrap(ratings, lambda sub, images: np.array([sub.shape[0], sub.shape[1], images.max()]),
                               n_boot=20, seed=0)
    assert reps.shape == (20, 3) and (reps[:, 0] == 3).all() and (reps[:, 1] == 4).all()
    means = two_level_bootstrap(ratings, lambda sub, images: sub.mean(), n_boot=200, seed=1)
    assert means.std() > 0 and abs(means.mean() - ratings.mean()) < 1.0
    again = two_level_bootstrap(ratings, lambda sub, images: sub.mean(), n_boot=200, seed=1)
    np.testing.assert_array_equal(means, again)


def _hand_study(tmp_path):
    """Items a, b real; c, d synthetic; two readers whose answers are scored by hand in the test."""
    study = tmp_path / "study"
    study.mkdir()
    items = ["a", "b", "c", "d"]
    settings = StudySettings(seed=0, questions=["realism", "findings"], image_format=FMT, items=items)
    (study / "study.json").write_text(settings.model_dump_json())
    brain = {"modality": "brain_mri"}
    key = StudyKey(items={
        "a": KeyEntry(origin="real", dataset="/r", file_name="a.png",
                      findings={**brain, "tumor_present": True, "hemisphere": "left"}),
        "b": KeyEntry(origin="real", dataset="/r", file_name="b.png", findings={**brain, "tumor_present": False}),
        "c": KeyEntry(origin="synthetic", dataset="/f", file_name="c.png",
                      findings={**brain, "tumor_present": True, "hemisphere": "right"}),
        "d": KeyEntry(origin="synthetic", dataset="/f", file_name="d.png", findings={**brain, "tumor_present": False}),
    })
    (study / "key.json").write_text(key.model_dump_json())
    store = AnswerStore(study)
    r1, r2 = store.add_readers(["r1", "r2"], settings)
    given = {  # item: (confidence, realism, tumour, hemisphere)
        r1: {"a": (1, 5, True, "left"), "b": (5, 3, True, "right"), "c": (6, 2, True, "left"),
             "d": (3, 4, False, None)},
        r2: {"a": (2, 4, False, None), "b": (5, 2, False, None), "c": (4, 1, True, "right"),
             "d": (6, 5, True, "left")},
    }
    for reader, answers in given.items():
        for item, (conf, realism, tumour, side) in answers.items():
            store.add_answer(reader.token, item, {"confidence": conf, "realism": realism, "tumor_present": tumour,
                                                  "hemisphere": side})
    return study


def test_scores_match_hand_computation(tmp_path):
    study = _hand_study(tmp_path)
    res = score_study(study, n_boot=200, seed=0)
    r1, r2, pooled = res.readers["r1"].metrics, res.readers["r2"].metrics, res.pooled.metrics
    # r1 calls a real, b synthetic, c synthetic, d real
    assert (r1["accuracy"].value, r1["sensitivity"].value, r1["specificity"].value) == (0.5, 0.5, 0.5)
    assert r1["auroc"].value == pytest.approx(0.75)  # c>a, c>b, d>a; d<b
    # r2 calls a real, b, c, d synthetic
    assert (r2["accuracy"].value, r2["sensitivity"].value, r2["specificity"].value) == (0.75, 1.0, 0.5)
    assert r2["auroc"].value == pytest.approx(0.75)
    assert (pooled["accuracy"].value, pooled["sensitivity"].value, pooled["specificity"].value) == (0.625, 0.75, 0.5)
    assert pooled["auroc"].value == pytest.approx(12 / 16)
    # calls per item (real, synthetic): a (2,0), b (0,2), c (0,2), d (1,1): P = 0.75, Pe = 34/64
    assert pooled["fleiss_kappa"].value == pytest.approx(7 / 15)
    assert pooled["realism_real"].value == pytest.approx(3.5) and pooled["realism_synthetic"].value == 3.0
    want = mannwhitneyu([5, 3, 4, 2], [2, 4, 1, 5], alternative="two-sided")
    assert pooled["realism_mann_whitney_p"].value == pytest.approx(want.pvalue)
    assert pooled["realism_mann_whitney_p"].detail["u"] == pytest.approx(want.statistic)
    for m in (pooled["accuracy"], pooled["auroc"], pooled["fleiss_kappa"], r1["auroc"], r1["accuracy"]):
        lo, hi = m.ci95
        assert lo <= m.value <= hi and lo < hi
    # ROC of r1 (positives c=6, d=3; negatives a=1, b=5): thresholds 1..7
    assert res.readers["r1"].roc == [(1.0, 1.0), (0.5, 1.0), (0.5, 1.0), (0.5, 0.5), (0.5, 0.5), (0.0, 0.5),
                                     (0.0, 0.0)]
    # findings: synthetic presence c r1 yes, d r1 yes, c r2 yes, d r2 no -> 3/4; hemisphere of c: r1 no, r2 yes
    syn, real = res.adherence["synthetic"], res.adherence["real"]
    assert (syn["tumor_present"].value, syn["tumor_present"].n) == (0.75, 4)
    assert (syn["hemisphere"].value, syn["hemisphere"].n) == (0.5, 2)
    assert (real["tumor_present"].value, real["hemisphere"].value) == (0.5, 0.5)
    # written where the report reads it, as a typed result
    back = read_result(study / "results.json", StudyResult)
    assert back == res
    assert "key" not in json.loads((study / "results.json").read_text())


def test_headline_and_partial_answers(tmp_path):
    study = _hand_study(tmp_path)
    store = AnswerStore(study)
    (r3,) = store.add_readers(["r3"], StudySettings.model_validate_json((study / "study.json").read_text()))
    store.add_answer(r3.token, "c", {"confidence": 6, "realism": 1, "tumor_present": False})
    res = score_study(study, n_boot=0)
    assert res.readers["r3"].n == 1 and res.pooled.n == 9
    assert res.readers["r3"].metrics["auroc"].value is None  # one class only
    assert res.pooled.metrics["accuracy"].ci95 is None  # no bootstrap asked
    labels = [label for label, _ in res.headline("study")]
    assert any("ROC AUC" in label for label in labels) and any("accuracy" in label for label in labels)


def test_no_answers_is_a_clear_error(tmp_path):
    study = _hand_study(tmp_path)
    (study / "answers.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (study / f"answers.sqlite{extra}").unlink(missing_ok=True)
    with pytest.raises(DataError, match="no answers yet"):
        score_study(study)
    (study / "key.json").unlink()
    with pytest.raises(DataError, match="key.json"):
        score_study(study)
