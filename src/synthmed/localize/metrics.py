"""Localisation metrics: pixel AUROC/AP, thresholded pixel scores, image AUROC.

Pure functions over arrays (checked against scikit-learn in the tests) and an
accumulator that streams maps image by image in constant memory: pixel scores are counted
in a fixed 65,536-level histogram (:class:`ScoreHistogram`), whose AUROC and AP are exact
for the scores rounded to that grid (within 1e-4 of the unrounded value in the tests), and the
thresholded counts are exact. The figures seed 003 reports are pixel AUROC, pixel accuracy
and precision; Dice and IoU at the same threshold are added.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthmed.classify.metrics import auroc as classify_auroc
from synthmed.results import LocalizationResult, Metric


def auroc(target: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (:func:`synthmed.classify.metrics.auroc`); None when ``target`` has one class."""
    value = classify_auroc(target, score)
    return None if np.isnan(value) else value


def average_precision(target: np.ndarray, score: np.ndarray) -> float | None:
    """Average precision, sum over thresholds of (R_n - R_{n-1}) P_n (scikit-learn's definition).

    Returns None when there is no positive.
    """
    t = np.asarray(target).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(t.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each distinct score
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _confusion(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) of a binary prediction, as int64."""
    t = np.asarray(target).ravel().astype(bool)
    p = np.asarray(pred).ravel().astype(bool)
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    return np.array([tp, fp, fn, t.size - tp - fp - fn], np.int64)


def _confusion_figures(counts: np.ndarray) -> dict[str, float | None]:
    tp, fp, fn, tn = (int(c) for c in counts)
    total, union = tp + fp + fn + tn, tp + fp + fn
    return {
        "accuracy": (tp + tn) / total if total else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "dice": 2 * tp / (2 * tp + fp + fn) if union else None,
        "iou": tp / union if union else None,
    }


def threshold_metrics(target: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Pixel accuracy, precision, recall, Dice and IoU of a binary prediction.

    Precision is None when nothing is predicted; Dice/IoU are None when both are empty.
    """
    return _confusion_figures(_confusion(target, pred))


class ScoreHistogram:
    """Positive and negative counts per score level, for AUROC and AP in O(levels) memory.

    Scores in [0, 1] are rounded to ``levels`` equally spaced levels; the AUROC and AP are
    then exact for the rounded scores (ties within a level count as ties), so they equal
    :func:`auroc` / :func:`average_precision` on scores already on the grid, and differ
    from them on others by at most the effect of rounding by ``0.5 / (levels - 1)``.
    """

    def __init__(self, levels: int = 2**16):
        if levels < 2:
            raise ValueError(f"levels must be at least 2, got {levels}")
        self.levels = levels
        self.positive = np.zeros(levels, np.int64)
        self.negative = np.zeros(levels, np.int64)

    def add(self, target: np.ndarray, score: np.ndarray) -> None:
        """Count the pixels of one image (``target`` bool, ``score`` in [0, 1], same size)."""
        s = np.asarray(score, np.float64).ravel()
        t = np.asarray(target).ravel().astype(bool)
        if s.size != t.size:
            raise ValueError(f"{s.size} scores for {t.size} targets")
        if s.size and not (np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0):
            raise ValueError("pixel scores must be finite and in [0, 1]")
        level = np.rint(s * (self.levels - 1)).astype(np.int64)
        self.positive += np.bincount(level[t], minlength=self.levels)
        self.negative += np.bincount(level[~t], minlength=self.levels)

    def auroc(self) -> float | None:
        """Mann-Whitney AUROC of the counted pixels; None without both classes."""
        n_pos, n_neg = int(self.positive.sum()), int(self.negative.sum())
        if n_pos == 0 or n_neg == 0:
            return None
        pos, neg = self.positive.astype(np.float64), self.negative.astype(np.float64)
        below = np.cumsum(neg) - neg  # negatives strictly below each level
        return float((np.sum(pos * below) + 0.5 * np.sum(pos * neg)) / (float(n_pos) * n_neg))

    def average_precision(self) -> float | None:
        """AP (scikit-learn's definition) with one threshold per occupied level; None without a positive."""
        n_pos = int(self.positive.sum())
        if n_pos == 0:
            return None
        pos, neg = self.positive[::-1], self.negative[::-1]  # from the highest level down
        occupied = (pos + neg) > 0
        tp, fp = np.cumsum(pos)[occupied], np.cumsum(neg)[occupied]
        precision = tp / (tp + fp)
        recall = tp / n_pos
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_dice_threshold(target: np.ndarray, score: np.ndarray, grid: int = 99) -> float:
    """The threshold in (0, 1) on a regular grid that maximises pixel Dice (for calibration)."""
    t = np.asarray(target).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float32).ravel()
    best, best_thr = -1.0, 0.5
    for thr in np.linspace(0.01, 0.99, grid):
        d = threshold_metrics(t, s >= thr)["dice"] or 0.0
        if d > best:
            best, best_thr = d, float(thr)
    return best_thr


class LocalizationMetrics:
    """Accumulates per-image anomaly maps, masks and image scores; :meth:`compute` gives the figures.

    Pixels are streamed into a :class:`ScoreHistogram` and thresholded counts, so memory
    does not grow with the number of pixels (image scores, one per image, are kept).
    """

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._pixels = ScoreHistogram()
        self._counts = np.zeros(4, np.int64)
        self._pixel_images = 0
        self._scores: list[float] = []
        self._labels: list[int] = []

    def update(self, anomaly_map: np.ndarray | None, mask: np.ndarray | None, image_score: float,
               label: int | None) -> None:
        """Add one image: its (H, W) map in [0, 1] and (H, W) bool mask (both or neither), score and label."""
        if (anomaly_map is None) != (mask is None):
            raise ValueError("give both the anomaly map and the mask, or neither")
        if anomaly_map is not None and mask is not None:
            if anomaly_map.shape != mask.shape:
                raise ValueError(f"anomaly map {anomaly_map.shape} and mask {mask.shape} differ in size")
            amap = np.asarray(anomaly_map, np.float32)
            self._pixels.add(mask, amap)
            self._counts += _confusion(mask, amap >= self.threshold)
            self._pixel_images += 1
        if label is not None:
            self._scores.append(float(image_score))
            self._labels.append(int(label))

    def compute(self, **settings: Any) -> LocalizationResult:
        """The metrics so far, as the stage result (``settings``: how the maps were made)."""
        values: dict[str, float | None] = {}
        if self._pixel_images:
            values["pixel_auroc"] = self._pixels.auroc()
            values["pixel_ap"] = self._pixels.average_precision()
            values.update({f"pixel_{k}": v for k, v in _confusion_figures(self._counts).items()})
        labels = np.array(self._labels)
        image = {"image_auroc": auroc(labels, np.array(self._scores)) if labels.size else None,
                 "image_ap": average_precision(labels, np.array(self._scores)) if labels.size else None}
        metrics = {k: Metric(value=v, n=self._pixel_images) for k, v in values.items()}
        metrics.update({k: Metric(value=v, n=len(self._labels)) for k, v in image.items()})
        return LocalizationResult(threshold=self.threshold, n_images=len(self._labels),
                                  n_pixel_images=self._pixel_images, metrics=metrics, **settings)
