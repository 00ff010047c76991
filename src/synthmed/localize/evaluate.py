"""``synthmed evaluate localization``: metrics of saved predictions against a dataset's masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synthmed.errors import DataError
from synthmed.localize.data import load_items
from synthmed.localize.metrics import LocalizationMetrics
from synthmed.localize.predict import PREDICTIONS_FILE, load_map
from synthmed.results import LocalizationResult, write_result


class LocalizationEvalConfig(BaseModel):
    """Settings of :func:`evaluate_localization`."""

    model_config = ConfigDict(extra="forbid")

    pred: Path = Field(description="output folder of `synthmed localize predict`")
    data: Path = Field(description="dataset directory with the true masks")
    threshold: float = Field(0.5, gt=0, lt=1)
    out: Path | None = None


def evaluate_localization(cfg: LocalizationEvalConfig) -> LocalizationResult:
    """Pixel AUROC/AP, accuracy, precision, recall, Dice, IoU at ``threshold``, and image AUROC.

    Raises:
        DataError: the predictions file is missing, a predicted map is missing, or a
            map's size differs from its mask.
    """
    pred_file = Path(cfg.pred) / PREDICTIONS_FILE
    if not pred_file.is_file():
        raise DataError(f"no {PREDICTIONS_FILE}; is this a `synthmed localize predict` folder?", cfg.pred)
    preds = {}
    for lineno, line in enumerate(pred_file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                preds[row["file_name"]] = row
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(f"bad prediction row ({err})", pred_file, lineno) from err
    acc = LocalizationMetrics(cfg.threshold)
    n = 0
    for it in load_items(cfg.data):
        row = preds.get(it.record.file_name)
        if row is None:
            continue
        n += 1
        amap = None
        if it.mask is not None:
            map_path = Path(cfg.pred) / row["map"]
            if not map_path.is_file():
                raise DataError(f"anomaly map {row['map']!r} is missing", cfg.pred)
            amap = load_map(map_path)
            if amap.size and not (np.isfinite(amap).all() and amap.min() >= 0.0 and amap.max() <= 1.0):
                raise DataError(f"anomaly map {row['map']!r} is not finite and in [0, 1] (min {np.nanmin(amap):g}, "
                                f"max {np.nanmax(amap):g}); scale it to [0, 1]", cfg.pred)
            if amap.shape != it.mask.shape:
                raise DataError(f"map {row['map']!r} is {amap.shape} but the mask of {it.record.file_name!r} is "
                                f"{it.mask.shape}", cfg.pred)
        acc.update(amap, it.mask, float(row["image_score"]), it.label)
    if n == 0:
        raise DataError("no prediction matches a row of the dataset (file_name)", pred_file)
    result = acc.compute(n_matched=n)
    if cfg.out is not None:
        write_result(cfg.out, result)
    return result
