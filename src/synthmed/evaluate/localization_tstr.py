"""``synthmed evaluate localization-tstr``: are synthetic image + mask pairs useful for training a lesion localiser?

The protocol of ``synthmed evaluate downstream`` for localisation, with the lesion segmenter
(:mod:`synthmed.segment`) as the model:

* ``TRTR`` - train on the real ``train`` rows (the reference);
* ``TSTR`` - train on synthetic pairs only (as many as real rows, unless ``n_synthetic``);
* ``R+S`` - real plus as many synthetic pairs;
* ``lowR`` - a small fraction of the real training *patients* (the low-data regime);
* ``lowR+S`` - that subset plus synthetic pairs.

Every model trains for the same number of steps, calibrates its threshold on the real ``val``
rows, and is tested on the same held-out real ``test`` patients: pooled pixel AUROC, pooled
pixel Dice at the threshold, and image AUROC (score: the map's maximum). 95 % intervals come
from one patient-level (cluster) bootstrap of the test set applied to every condition, so the
ratio TSTR / TRTR and the low-data gain get paired intervals. Each condition's model is kept
under ``work/``; a rerun reuses finished ones and resumes an interrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from synthmed.classify.metrics import bootstrap_indices
from synthmed.data.dataset import ImageDataset, hash_dataset
from synthmed.errors import DataError
from synthmed.evaluate.downstream import patient_subset
from synthmed.localize.metrics import ScoreHistogram, auroc
from synthmed.results import LocalizationTSTRResult, Metric, write_result
from synthmed.results.intervals import percentile_ci
from synthmed.segment import LesionSegmenter, SegmenterConfig, SegmenterTrainConfig, fit_segmenter, load_pairs
from synthmed.utils.provenance import write_json_atomic

logger = logging.getLogger(__name__)

Condition = Literal["trtr", "tstr", "mix", "low", "low+synth"]
_NAMES = {"trtr": "TRTR", "tstr": "TSTR", "mix": "R+S", "low": "lowR", "low+synth": "lowR+S"}
_LEVELS = 1024  # pixel-score histogram levels per image (AUROC exact for scores rounded to them)


class LocalizationTSTRConfig(BaseModel):
    """What ``synthmed evaluate localization-tstr`` runs.

    Attributes:
        real: Real dataset with masks and patient-level train / val / test splits.
        synthetic: Generated image + mask pairs (``synthmed generate --controlnet ...``); every row trains.
        out: The JSON result file; models go to ``work`` (default: beside it).
        steps, batch_size, resolution, model: The segmenter every condition trains (same for all).
        low_fraction: Fraction of the real training patients of the low-data conditions.
        n_synthetic: Synthetic pairs per synthetic condition (default: as many as real training rows).
    """

    model_config = ConfigDict(extra="forbid")

    real: Path
    synthetic: Path | None = None
    out: Path
    work: Path | None = None
    conditions: list[Condition] = Field(default_factory=lambda: ["trtr", "tstr", "mix", "low", "low+synth"])
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(8, ge=1)
    model: SegmenterConfig = SegmenterConfig()
    low_fraction: float = Field(0.1, gt=0, le=1)
    n_synthetic: int | None = Field(None, ge=1)
    seed: int = 0
    n_boot: int = Field(1000, ge=100)
    threads: int | None = Field(None, ge=1)
    progress: bool = True


class _TestRead:
    """Per test image: pixel-score histograms, thresholded counts, image score and label."""

    def __init__(self, probs: np.ndarray, masks: np.ndarray, threshold: float):
        n = len(probs)
        self.pos = np.zeros((n, _LEVELS), np.int64)
        self.neg = np.zeros((n, _LEVELS), np.int64)
        for i, (p, m) in enumerate(zip(probs, masks, strict=True)):
            level = np.rint(np.clip(p, 0, 1) * (_LEVELS - 1)).astype(np.int64).ravel()
            t = m.ravel()
            self.pos[i] = np.bincount(level[t], minlength=_LEVELS)
            self.neg[i] = np.bincount(level[~t], minlength=_LEVELS)
        pred = probs >= threshold
        self.tp = (pred & masks).sum(axis=(1, 2))
        self.fp = (pred & ~masks).sum(axis=(1, 2))
        self.fn = (~pred & masks).sum(axis=(1, 2))
        self.score = probs.reshape(n, -1).max(axis=1)
        self.label = masks.reshape(n, -1).any(axis=1)

    def metrics(self, idx: np.ndarray) -> dict[str, float]:
        hist = ScoreHistogram(_LEVELS)
        hist.positive, hist.negative = self.pos[idx].sum(0), self.neg[idx].sum(0)
        tp, fp, fn = self.tp[idx].sum(), self.fp[idx].sum(), self.fn[idx].sum()
        image = auroc(self.label[idx], self.score[idx])
        return {"pixel_auroc": hist.auroc() or float("nan"),
                "pixel_dice": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
                "image_auroc": float("nan") if image is None else image}


def _splits(real: Path, resolution: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, list[str]]]:
    ds = ImageDataset(real)
    out = {}
    for split in ("train", "val", "test"):
        rows = ds.split(split)
        if not rows:
            raise DataError(f"needs patient-level train / val / test splits; split {split!r} is empty", real)
        images, masks = load_pairs(real, split, resolution)
        out[split] = (images, masks, [r.patient_id or r.file_name for r in rows])
    leaked = set(out["test"][2]) & (set(out["train"][2]) | set(out["val"][2]))
    if leaked:
        raise DataError(f"patients {sorted(leaked)[:5]} are in the test split and in train/val", real)
    return out


def _plan(cfg: LocalizationTSTRConfig, train, synth) -> list[tuple[str, torch.Tensor, torch.Tensor, int, int]]:
    """(name, images, masks, n_real, n_synthetic) of each condition."""
    rng = np.random.default_rng([cfg.seed, 2027])
    images, masks, patients = train
    n_real = len(images)
    plan = []

    def synth_rows(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = np.sort(rng.permutation(len(synth[0]))[:min(k, len(synth[0]))])
        return synth[0][pick], synth[1][pick]

    n_syn = cfg.n_synthetic or n_real
    low = patient_subset(patients, masks.flatten(1).any(1).numpy().astype(int), cfg.low_fraction, rng)
    for cond in cfg.conditions:
        name = _NAMES[cond]
        if cond != "trtr" and cond != "low" and synth is None:
            raise DataError(f"condition {cond!r} needs a synthetic dataset (--synthetic)", cfg.real)
        real_idx = {"trtr": np.arange(n_real), "mix": np.arange(n_real), "low": low, "low+synth": low}.get(cond)
        parts_i, parts_m = [], []
        if real_idx is not None:
            parts_i.append(images[real_idx])
            parts_m.append(masks[real_idx])
        if cond in ("tstr", "mix", "low+synth"):
            si, sm = synth_rows(n_syn)
            parts_i.append(si)
            parts_m.append(sm)
        plan.append((name, torch.cat(parts_i), torch.cat(parts_m), 0 if real_idx is None else len(real_idx),
                     sum(len(p) for p in parts_i) - (0 if real_idx is None else len(real_idx))))
    return plan


def _trained(cfg: LocalizationTSTRConfig, name: str, images, masks, val, identity: dict) -> LesionSegmenter:
    """The condition's segmenter: trained earlier with the same settings and data, else trained (resumable)."""
    folder = (cfg.work or cfg.out.with_suffix("")) / name.replace("+", "_plus_")
    done, stamp = folder / "model", folder / "identity.json"
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    same = stamp.is_file() and json.loads(stamp.read_text()).get("key") == key
    if same and (done / "config.json").is_file():
        logger.info("%s: trained earlier with these settings, loaded from %s", name, done)
        return LesionSegmenter.from_pretrained(done)
    if folder.exists() and not same:
        shutil.rmtree(folder)  # another run's work: start this condition afresh
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp, {"key": key, **identity})
    train_cfg = SegmenterTrainConfig(data=cfg.real, out=folder, model=cfg.model, max_steps=cfg.steps,
                                     batch_size=cfg.batch_size, seed=cfg.seed, resume=True, progress=cfg.progress)
    model, _ = fit_segmenter(images, masks, train_cfg, val=val, digest=key)
    model.save_pretrained(done)
    return model


def evaluate_localization_tstr(cfg: LocalizationTSTRConfig) -> LocalizationTSTRResult:
    """Train one segmenter per condition, test each on the real test patients, and write ``cfg.out``.

    Raises:
        DataError: missing splits or masks, test patients leaking into train/val, or a synthetic
            condition without synthetic data.
    """
    from synthmed.utils.device import torch_threads

    t0 = time.monotonic()
    with torch_threads(cfg.threads):
        real = _splits(Path(cfg.real), cfg.model.resolution)
        synth = load_pairs(cfg.synthetic, None, cfg.model.resolution) if cfg.synthetic is not None else None
        test_images, test_masks, test_patients = real["test"]
        masks_np = test_masks[:, 0].numpy() > 0.5
        replicates = bootstrap_indices(len(test_images), test_patients, cfg.n_boot, cfg.seed)
        conditions: dict[str, dict[str, Metric]] = {}
        samples: dict[str, dict[str, np.ndarray]] = {}
        sizes: dict[str, dict[str, int]] = {}
        data_hashes = {"real": hash_dataset(cfg.real), "synthetic": hash_dataset(cfg.synthetic) if synth else None}
        for name, images, masks, n_real, n_syn in _plan(cfg, real["train"], synth):
            logger.info("%s: %d real + %d synthetic training pairs", name, n_real, n_syn)
            # A condition without synthetic pairs does not depend on them: it is reused across synthetic sets.
            identity = {"condition": name, "n_real": n_real, "n_synthetic": n_syn, "real": data_hashes["real"],
                        "synthetic": data_hashes["synthetic"] if n_syn else None,
                        **cfg.model_dump(mode="json", include={"steps", "batch_size", "model", "seed",
                                                               "low_fraction", "n_synthetic"})}
            model = _trained(cfg, name, images, masks, real["val"][:2], identity)
            read = _TestRead(model.predict(test_images[:, 0].numpy()), masks_np, model.config.threshold)
            point = read.metrics(np.arange(len(test_images)))
            boot = [read.metrics(idx) for idx in replicates]
            samples[name] = {k: np.array([b[k] for b in boot]) for k in point}
            conditions[name] = {k: Metric(value=v, ci95=percentile_ci(samples[name][k]), n=len(test_images),
                                          detail={"threshold": model.config.threshold})
                                for k, v in point.items()}
            sizes[name] = {"real": n_real, "synthetic": n_syn}
    comparisons = {}
    for label, a, b, kind in (("TSTR/TRTR", "TSTR", "TRTR", "ratio"), ("R+S - TRTR", "R+S", "TRTR", "difference"),
                              ("low-data gain (lowR+S - lowR)", "lowR+S", "lowR", "difference")):
        if a in conditions and b in conditions:
            comparisons[label] = {}
            for k in conditions[a]:
                x, y = conditions[a][k].value, conditions[b][k].value
                with np.errstate(divide="ignore", invalid="ignore"):
                    reps = samples[a][k] / samples[b][k] if kind == "ratio" else samples[a][k] - samples[b][k]
                comparisons[label][k] = Metric(value=x / y if kind == "ratio" else x - y, ci95=percentile_ci(reps),
                                               n=len(test_images))
    result = LocalizationTSTRResult(
        conditions=conditions, comparisons=comparisons, training_pairs=sizes, n_test=len(test_images),
        n_test_patients=len(set(test_patients)), steps=cfg.steps, real=str(cfg.real),
        synthetic=str(cfg.synthetic) if cfg.synthetic else None,
        synthetic_hash=data_hashes["synthetic"], seconds=time.monotonic() - t0)
    write_result(cfg.out, result)
    return result
