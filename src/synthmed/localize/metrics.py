"""Localisation metrics: pixel AUROC/AP, thresholded pixel scores, image AUROC.

Pure functions over arrays (checked against scikit-learn in the tests) and an
accumulator that collects maps image by image. The figures seed 003 reports are pixel
AUROC, pixel accuracy and precision; Dice and IoU at the same threshold are added.
"""

from __future__ import annotations

import numpy as np

from synthmed.classify.metrics import auroc as classify_auroc


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


def threshold_metrics(target: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Pixel accuracy, precision, recall, Dice and IoU of a binary prediction.

    Precision is None when nothing is predicted; Dice/IoU are None when both are empty.
    """
    t = np.asarray(target).ravel().astype(bool)
    p = np.asarray(pred).ravel().astype(bool)
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    tn = t.size - tp - fp - fn
    union = tp + fp + fn
    return {
        "accuracy": (tp + tn) / t.size if t.size else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "dice": 2 * tp / (2 * tp + fp + fn) if union else None,
        "iou": tp / union if union else None,
    }


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

    Maps are kept as float32, so memory is 4 bytes per pixel of the evaluated set.
    """

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._maps: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
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
            self._maps.append(np.asarray(anomaly_map, np.float32).ravel())
            self._masks.append(np.asarray(mask, bool).ravel())
        if label is not None:
            self._scores.append(float(image_score))
            self._labels.append(int(label))

    def compute(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {"threshold": self.threshold, "n_images": len(self._labels),
                                              "n_pixel_images": len(self._maps)}
        if self._maps:
            maps = np.concatenate(self._maps)
            masks = np.concatenate(self._masks)
            out["pixel_auroc"] = auroc(masks, maps)
            out["pixel_ap"] = average_precision(masks, maps)
            out.update({f"pixel_{k}": v for k, v in threshold_metrics(masks, maps >= self.threshold).items()})
        labels = np.array(self._labels)
        out["image_auroc"] = auroc(labels, np.array(self._scores)) if labels.size else None
        out["image_ap"] = average_precision(labels, np.array(self._scores)) if labels.size else None
        return out
