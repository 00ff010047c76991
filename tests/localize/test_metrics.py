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

from synthmed.localize.metrics import LocalizationMetrics, auroc, average_precision, threshold_metrics


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
    out = acc.compute()
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(np.concatenate(masks), np.concatenate(maps)))
    assert out["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["n_images"] == 6
    with pytest.raises(ValueError, match="differ in size"):
        acc.update(np.zeros((8, 8)), np.zeros((4, 4), bool), 0.0, 0)
