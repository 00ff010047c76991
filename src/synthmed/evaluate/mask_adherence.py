"""``synthmed evaluate mask-adherence``: is each generated lesion where its mask asked for it?

A model trained on real images reads every generated image: a lesion segmenter (``synthmed
train segmenter``) or the CLIP-based localiser (``synthmed localize train``), each at its own
calibrated threshold. Its thresholded map is compared with the mask the image was generated
from (the row's ``mask_file_name``):

* per lesion image: Dice and IoU, pixel AUROC of the probability map, and whether the centre
  of the largest predicted region lies inside the requested mask (``centre_inside``; no region
  found counts as outside);
* per healthy image (empty mask): whether nothing is found (``healthy_clean``: no predicted
  region of ``min_region_px`` pixels or more);
* the pooled pixel AUROC over every pixel of every image.

Means get a bootstrap 95 % interval over images, proportions a Wilson interval. Figures are
given overall and per requested size category (from ``requested_findings``). With ``real`` the
same segmenter reads the real held-out rows against their own masks: the reference a
generator is compared with, since no image, real or generated, reads better than the
segmenter's own accuracy allows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import ndimage

from synthmed.data.dataset import ImageDataset, hash_dataset
from synthmed.data.imageio import load_lesion_mask, to_float01
from synthmed.data.records import DatasetRecord
from synthmed.errors import DataError
from synthmed.localize.metrics import auroc, threshold_metrics
from synthmed.results import MaskAdherenceResult, Metric, write_result
from synthmed.results.intervals import percentile_ci, wilson_interval

logger = logging.getLogger(__name__)

_MEANS = ("dice", "iou", "pixel_auroc")


class MaskAdherenceConfig(BaseModel):
    """What ``synthmed evaluate mask-adherence`` reads and writes.

    Attributes:
        fake: Generated dataset whose rows carry the mask each image was made from.
        segmenter, localizer: The model that reads the lesions (exactly one): a lesion segmenter
            folder or a localiser folder, trained on real images.
        out: The JSON result file.
        real: A real dataset with masks: the same figures on its ``real_split`` rows, as the reference.
        min_region_px: Smallest predicted region (pixels) that counts as a found lesion.
        n_boot: Bootstrap replicates of the mean intervals.
    """

    model_config = ConfigDict(extra="forbid")

    fake: Path
    segmenter: Path | None = None
    localizer: Path | None = None
    out: Path
    real: Path | None = None
    real_split: str = "test"
    min_region_px: int = Field(4, ge=1)
    n_boot: int = Field(1000, ge=100)
    seed: int = 0

    @model_validator(mode="after")
    def _one_reader(self) -> MaskAdherenceConfig:
        if (self.segmenter is None) == (self.localizer is None):
            raise ValueError("give exactly one of segmenter (synthmed train segmenter) or localizer "
                             "(synthmed localize train)")
        return self


class _Reader:
    """Lesion probability maps of stored images from a segmenter or a localiser, and its threshold."""

    def __init__(self, cfg: MaskAdherenceConfig):
        if cfg.segmenter is not None:
            from synthmed.segment import LesionSegmenter

            self._segmenter = LesionSegmenter.from_pretrained(cfg.segmenter)
            self.threshold = self._segmenter.config.threshold
            self.name = f"segmenter {cfg.segmenter}"
        else:
            from synthmed.localize.localizer import load_localizer

            self._localizer = load_localizer(cfg.localizer)
            self.threshold = self._localizer.config.threshold
            self.name = f"localizer {cfg.localizer}"

    def maps(self, images: list[np.ndarray]) -> np.ndarray:
        if hasattr(self, "_segmenter"):
            return self._segmenter.predict(np.stack([_grey01(im) for im in images]))
        return np.stack([o.anomaly_map for o in self._localizer.predict(images)])


def _grey01(image: np.ndarray) -> np.ndarray:
    x = to_float01(image)
    return x.mean(axis=-1) if x.ndim == 3 else x


def _rows(root: Path, split: str | None = None) -> tuple[ImageDataset, list[DatasetRecord]]:
    ds = ImageDataset(root)
    rows = [r for r in ds.records if r.mask_file_name and (split is None or r.split == split)]
    if not rows:
        where = f" in split {split!r}" if split else ""
        raise DataError(f"no row{where} has a mask_file_name: mask adherence compares each image with its mask",
                        root / "metadata.jsonl")
    return ds, rows


def _largest_region(pred: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(pred)
    if n == 0:
        return pred
    sizes = ndimage.sum(pred, labels, index=np.arange(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def image_scores(prob: np.ndarray, mask: np.ndarray, threshold: float, min_region_px: int) -> dict[str, float]:
    """The per-image figures of one (H, W) probability map against its (H, W) bool requested mask."""
    pred = prob >= threshold
    region = _largest_region(pred)
    found = int(region.sum()) >= min_region_px
    if not mask.any():
        return {"healthy_clean": float(not found)}
    figures = threshold_metrics(mask, pred)
    inside = False
    if found:
        r, c = ndimage.center_of_mass(region)
        inside = bool(mask[int(round(r)), int(round(c))])
    return {"dice": figures["dice"] or 0.0, "iou": figures["iou"] or 0.0,
            "pixel_auroc": auroc(mask.ravel(), prob.ravel()), "centre_inside": float(inside)}


def _summarise(scores: list[dict[str, float]], rng: np.random.Generator, n_boot: int) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for key in (*_MEANS, "centre_inside", "healthy_clean"):
        vals = np.array([s[key] for s in scores if s.get(key) is not None], dtype=np.float64)
        if vals.size == 0:
            continue
        if key in _MEANS:
            reps = vals[rng.integers(0, vals.size, size=(n_boot, vals.size))].mean(axis=1)
            out[key] = Metric(value=float(vals.mean()), ci95=percentile_ci(reps), n=int(vals.size))
        else:
            k = int(vals.sum())
            out[key] = Metric(value=k / vals.size, ci95=wilson_interval(k, vals.size), n=int(vals.size))
    return out


def _group(rec: DatasetRecord, mask: np.ndarray) -> str:
    findings = rec.requested_findings or rec.findings
    if not mask.any():
        return "no_tumour"
    size = getattr(findings, "size_category", None)
    return str(size) if size else "unknown_size"


def _read(reader: _Reader, ds: ImageDataset, rows: list[DatasetRecord], cfg: MaskAdherenceConfig,
          desc: str) -> tuple[list[dict[str, float]], list[str], np.ndarray, np.ndarray]:
    from tqdm.auto import tqdm

    scores, groups, pix_t, pix_s = [], [], [], []
    batch = 32
    for start in tqdm(range(0, len(rows), batch), desc=desc, unit="batch", disable=len(rows) < 64):
        chunk = rows[start:start + batch]
        images = [ds.image(r) for r in chunk]
        masks = [load_lesion_mask(ds.root / r.mask_file_name, shape=img.shape[:2]) for r, img in zip(chunk, images,
                                                                                                      strict=True)]
        probs = reader.maps(images)
        for rec, prob, mask in zip(chunk, probs, masks, strict=True):
            scores.append(image_scores(prob, mask, reader.threshold, cfg.min_region_px))
            groups.append(_group(rec, mask))
            pix_t.append(mask.ravel())
            pix_s.append(prob.ravel().astype(np.float32))
    return scores, groups, np.concatenate(pix_t), np.concatenate(pix_s)


def _figures(scores, groups, pix_t, pix_s, cfg: MaskAdherenceConfig) -> tuple[dict, dict]:
    rng = np.random.default_rng(cfg.seed)
    overall = _summarise(scores, rng, cfg.n_boot)
    overall["pooled_pixel_auroc"] = Metric(value=auroc(pix_t, pix_s), n=len(scores))
    by_group = {g: _summarise([s for s, gg in zip(scores, groups, strict=True) if gg == g], rng, cfg.n_boot)
                for g in sorted(set(groups))}
    return overall, by_group


def evaluate_mask_adherence(cfg: MaskAdherenceConfig) -> MaskAdherenceResult:
    """Score every generated image against its mask (and the real reference); write ``cfg.out``.

    Raises:
        DataError: a dataset without mask rows, a bad mask (named), or a folder that is not a segmenter / localiser.
    """
    fake_ds, fake_rows = _rows(Path(cfg.fake))
    real = _rows(Path(cfg.real), cfg.real_split) if cfg.real is not None else None
    reader = _Reader(cfg)
    scores, groups, pix_t, pix_s = _read(reader, fake_ds, fake_rows, cfg, "mask adherence")
    overall, by_group = _figures(scores, groups, pix_t, pix_s, cfg)
    reference, reference_groups = {}, {}
    if real is not None:
        reference, reference_groups = _figures(*_read(reader, *real, cfg, "real reference"), cfg)
    result = MaskAdherenceResult(
        n=len(scores), n_lesion=sum(g != "no_tumour" for g in groups), threshold=reader.threshold,
        metrics=overall, groups=by_group, reference=reference, reference_groups=reference_groups,
        fake=str(cfg.fake), fake_hash=hash_dataset(cfg.fake), reader=reader.name,
        real=str(cfg.real) if cfg.real else None, real_split=cfg.real_split if cfg.real else None)
    write_result(cfg.out, result)
    return result
