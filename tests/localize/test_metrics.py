"""Localisation metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    jaccard_score,
    precision_score,
    roc_auc_score,
)

from synthmed.localize.metrics import (
    LocalizationMetrics,
    ScoreHistogram,
    auroc,
    average_precision,
    threshold_metrics,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_ap_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(2000) < 0.2
    s = np.round(rng.random(2000) + 0.5 * y, 1)  # rounding makes many ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_threshold_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    t = rng.random((40, 40)) < 0.3
    p = rng.random((40, 40)) < 0.4
    m = threshold_metrics(t, p)
    tf, pf = t.ravel(), p.ravel()
    assert m["accuracy"] == pytest.approx(accuracy_score(tf, pf))
    assert m["precision"] == pytest.approx(precision_score(tf, pf))
    assert m["dice"] == pytest.approx(f1_score(tf, pf))
    assert m["iou"] == pytest.approx(jaccard_score(tf, pf))


def test_degenerate_cases_give_none_not_a_number():
    assert auroc(np.zeros(5), np.arange(5)) is None
    assert average_precision(np.zeros(5), np.arange(5)) is None
    m = threshold_metrics(np.zeros(9, bool), np.zeros(9, bool))
    assert m["precision"] is None and m["dice"] is None and m["accuracy"] == 1.0


def test_accumulator_pools_pixels_and_images():
    rng = np.random.default_rng(4)
    acc = LocalizationMetrics(threshold=0.5)
    maps, masks, scores, labels = [], [], [], []
    for i in range(6):
        mask = np.zeros((8, 8), bool)
        if i % 2:
            mask[2:5, 3:6] = True
        amap = np.clip(mask * 0.6 + rng.random((8, 8)) * 0.5, 0, 1).astype(np.float32)
        acc.update(amap, mask, float(amap.max()), int(mask.any()))
        maps.append(amap.ravel()), masks.append(mask.ravel()), scores.append(amap.max()), labels.append(mask.any())
    result = acc.compute()
    out = {k: m.value for k, m in result.metrics.items()}
    all_masks, all_maps = np.concatenate(masks), np.concatenate(maps)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(all_masks, all_maps), abs=1e-4)
    assert out["pixel_ap"] == pytest.approx(average_precision_score(all_masks, all_maps), abs=1e-3)
    exact = threshold_metrics(all_masks, all_maps >= 0.5)  # thresholded counts are exact, not binned
    assert all(out[f"pixel_{k}"] == v for k, v in exact.items())
    assert out["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result.n_images == 6 and result.metrics["pixel_auroc"].n == 6
    with pytest.raises(ValueError, match="differ in size"):
        acc.update(np.zeros((8, 8)), np.zeros((4, 4), bool), 0.0, 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_score_histogram_is_exact_on_the_grid_and_within_rounding_off_it(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(5000) < 0.1
    on_grid = np.rint(np.clip(rng.random(5000) * 0.7 + 0.3 * y, 0, 1) * 65535) / 65535
    hist = ScoreHistogram()
    for part in np.array_split(np.arange(5000), 7):  # streamed in uneven pieces
        hist.add(y[part], on_grid[part])
    assert hist.auroc() == pytest.approx(roc_auc_score(y, on_grid), abs=1e-12)
    assert hist.average_precision() == pytest.approx(average_precision_score(y, on_grid), abs=1e-12)
    off_grid = np.clip(rng.random(5000) * 0.7 + 0.3 * y, 0, 1)
    hist = ScoreHistogram()
    hist.add(y, off_grid)
    assert hist.auroc() == pytest.approx(roc_auc_score(y, off_grid), abs=1e-4)
    coarse = ScoreHistogram(levels=11)  # ties by construction: still Mann-Whitney with half credit
    coarse.add(y, np.round(off_grid, 1))
    assert coarse.auroc() == pytest.approx(roc_auc_score(y, np.round(off_grid, 1)), abs=1e-12)


def test_score_histogram_refuses_scores_outside_the_unit_interval():
    hist = ScoreHistogram()
    for bad in ([0.5, 1.5], [np.nan, 0.1], [-0.1, 0.2]):
        with pytest.raises(ValueError, match=r"finite and in \[0, 1\]"):
            hist.add(np.array([True, False]), np.array(bad))
    assert hist.auroc() is None and hist.average_precision() is None
