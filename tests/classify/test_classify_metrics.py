import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from synthmed.classify.metrics import (
    auroc,
    bootstrap_indices,
    classification_metrics,
)
from synthmed.results.intervals import percentile_ci


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.3 * y, 1)  # rounding makes many ties
    assert auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(auroc(np.ones(5), np.arange(5)))


def test_binary_metrics_from_a_known_confusion():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.4, 0.35, 0.95])  # TN=3 FP=1 TP=4 FN=2
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1))
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["sensitivity"] == pytest.approx(4 / 6)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((4 / 6 + 3 / 4) / 2)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p1))


def test_multiclass_metrics_collapse_tumour_types_for_sensitivity():
    y = np.array([0, 1, 2, 3, 3])
    probs = np.eye(4)[[0, 1, 2, 1, 3]]  # one pituitary called glioma: wrong class, still "tumour"
    m = classification_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["sensitivity"] == 1.0 and m["specificity"] == 1.0
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert roc_auc_score(y, probs, multi_class="ovr", average="macro") == pytest.approx(m["auroc"])


def test_cluster_bootstrap_draws_whole_patients():
    groups = ["a", "a", "a", "b", "b", "c"]
    reps = bootstrap_indices(6, groups, n_boot=50, seed=1)
    for idx in reps:
        drawn = [groups[i] for i in idx]
        for g in set(drawn):  # a drawn patient comes with all its slices, possibly several times
            assert drawn.count(g) % groups.count(g) == 0
    assert bootstrap_indices(6, groups, 5, seed=1)[0].tolist() == reps[0].tolist()  # seeded


def test_percentile_ci_covers_the_truth_and_ignores_nan():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    means = [y[idx].mean() for idx in bootstrap_indices(400, None, 500, seed=0)]
    lo, hi = percentile_ci(means + [float("nan")])
    assert lo < y.mean() < hi and hi - lo < 0.15
