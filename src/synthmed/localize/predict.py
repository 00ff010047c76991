"""``synthmed localize predict``: anomaly maps, overlays, scores, findings and metrics.

Output folder::

    maps/<stem>.png          16-bit PNG, anomaly probability x 65535 (or maps/<stem>.npy, float32)
    heatmaps/<stem>.png      the anomaly map blended on the scan
    overlays/<stem>.png      the thresholded region in red on the scan (the explainer's input)
    predictions.jsonl        per image: scores, predicted area, findings from the thresholded map
    metrics.json             when the data has masks: pixel AUROC/AP, accuracy, precision, Dice, IoU, image AUROC
    synthmed.json            provenance
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from synthmed.caption.base import CaptionInput
from synthmed.caption.mask import MaskCaptioner
from synthmed.data.imageio import quantize, save_png_atomic
from synthmed.errors import ConfigError
from synthmed.localize.data import load_items
from synthmed.localize.localizer import load_localizer
from synthmed.localize.metrics import LocalizationMetrics
from synthmed.localize.overlay import heatmap_overlay, red_region_overlay
from synthmed.results import LocalizationResult, write_result
from synthmed.utils.provenance import provenance, write_json_atomic

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"


class LocalizePredictConfig(BaseModel):
    """Settings of :func:`predict_localization`."""

    model_config = ConfigDict(extra="forbid")

    model: Path
    data: Path
    out: Path
    split: str | None = Field(None, description="only this split (default: every row)")
    threshold: float | None = Field(None, gt=0, lt=1, description="default: the threshold calibrated in training")
    batch_size: int = Field(16, ge=1)
    test_time_flip: bool | None = Field(None, description="also the mirrored image (default: the localiser's setting)")
    test_time_shift: int | None = Field(None, ge=0, description="also the image shifted by this many input pixels "
                                                                "(default: the localiser's setting)")
    map_format: Literal["png16", "npy"] = "png16"
    threads: int | None = Field(None, ge=1)
    device: str = Field("auto", description="torch device: auto (the GPU when present), cpu, cuda...")
    progress: bool = True


def save_map(path_stem: Path, anomaly_map: np.ndarray, fmt: str) -> str:
    """Write one anomaly map; returns the file name written."""
    if fmt == "npy":
        path = path_stem.with_suffix(".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, anomaly_map.astype(np.float32))
    else:
        path = path_stem.with_suffix(".png")
        save_png_atomic(path, quantize(anomaly_map, 16))
    return path.name


def load_map(path: str | Path) -> np.ndarray:
    """Read a map written by :func:`save_map` as (H, W) float32 in [0, 1]."""
    from synthmed.data.imageio import load_image, to_float01

    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path).astype(np.float32)
    return to_float01(load_image(path))


def predict_localization(cfg: LocalizePredictConfig) -> LocalizationResult | None:
    """Localise every image of ``cfg.data`` (or one split) and write the output folder.

    Returns:
        The metrics (also in ``metrics.json``) when masks exist, else None.
    """
    import torch

    from synthmed.utils.device import resolve_device

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not Path(cfg.model).is_dir():
        raise ConfigError(f"localiser folder {cfg.model} does not exist")
    items = load_items(cfg.data, cfg.split)
    localizer = load_localizer(cfg.model, device=resolve_device(cfg.device))
    threshold = cfg.threshold if cfg.threshold is not None else localizer.config.threshold
    flip = localizer.config.test_time_flip if cfg.test_time_flip is None else cfg.test_time_flip
    shift = localizer.config.test_time_shift if cfg.test_time_shift is None else cfg.test_time_shift
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    captioner = MaskCaptioner()
    acc = LocalizationMetrics(threshold)
    rows = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(items), desc="localise", unit="img", disable=not cfg.progress)
    for i in range(0, len(items), cfg.batch_size):
        batch = items[i:i + cfg.batch_size]
        results = localizer.predict([it.image for it in batch], test_time_flip=flip, test_time_shift=shift)
        for it, res in zip(batch, results, strict=True):
            stem = Path(it.record.file_name).stem
            region = res.anomaly_map >= threshold
            map_name = save_map(out / "maps" / stem, res.anomaly_map, cfg.map_format)
            save_png_atomic(out / "heatmaps" / f"{stem}.png", heatmap_overlay(it.image, res.anomaly_map))
            save_png_atomic(out / "overlays" / f"{stem}.png", red_region_overlay(it.image, region))
            cap = captioner.caption_one(CaptionInput(it.record.file_name, it.image, region, it.record.spacing_mm))
            rows.append({"file_name": it.record.file_name, "map": f"maps/{map_name}",
                         "heatmap": f"heatmaps/{stem}.png", "overlay": f"overlays/{stem}.png",
                         "image_score": res.image_score, "zero_shot_score": res.zero_shot, "map_max": res.map_max,
                         "predicted_area_px": int(region.sum()), "label": it.label,
                         "findings": cap.findings.model_dump(mode="json") if cap.findings else None,
                         "findings_error": cap.error})
            acc.update(res.anomaly_map if it.mask is not None else None, it.mask, res.image_score, it.label)
        bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - t0
    with (out / PREDICTIONS_FILE).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    metrics = None
    if any(it.mask is not None for it in items):
        metrics = acc.compute(image_score=localizer.config.image_score, test_time_flip=flip,
                              test_time_shift=shift, split=cfg.split,
                              images_per_second=round(len(items) / seconds, 2) if seconds > 0 else None)
        write_result(out / metrics.FILE, metrics)
    write_json_atomic(out / "synthmed.json", provenance(kind="localize-predict", config=cfg.model_dump(mode="json"),
                                                        threshold=threshold))
    logger.info("localised %d images in %.1f s -> %s", len(items), seconds, out)
    return metrics
