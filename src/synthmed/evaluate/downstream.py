"""``synthmed evaluate downstream``: are synthetic images useful for training a classifier?

The protocol (seed 000's ViT on real vs generated data; seed 002's low-data augmentation):

* ``TRTR``  — train on real, test on real (the reference);
* ``TSTR``  — train on synthetic, test on real (by default as many synthetic images as
  real ones, so the two differ only in where the images come from);
* ``R+Sx{r}`` — real plus ``r`` synthetic images per real image, for each ratio ``r``;
* ``lowR``  — a small subset of the real training *patients* alone (the low-data regime);
* ``lowR+S`` — that subset plus synthetic images.

Every model is tested on the same held-out real ``test`` split (patients disjoint from
training and validation, checked), selected by loss on the real ``val`` split, and
trained once per seed. Metrics are averaged over seeds; 95 % intervals come from a
patient-level (cluster) bootstrap of the test set, applied identically to every
condition, so the ratio TSTR / TRTR and the gains over real alone get paired intervals.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from synthmed.classify.data import CLASS_NAMES, labels_for, load_images, to_channels
from synthmed.classify.presets import ClassifierPreset, build_classifier, get_preset, preset_names
from synthmed.classify.train import fit, predict
from synthmed.data.dataset import ImageDataset, hash_dataset
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError, DataError
from synthmed.evaluate.downstream_report import DownstreamReport, TrainedModel, summarise
from synthmed.results import DownstreamResult, write_result
from synthmed.utils.device import resolve_device
from synthmed.utils.provenance import provenance

logger = logging.getLogger(__name__)

CONDITIONS: tuple[str, ...] = ("trtr", "tstr", "mix", "low", "low+synth")


class DownstreamConfig(BaseModel):
    """What ``synthmed evaluate downstream`` runs (YAML, flags or Python).

    Attributes:
        real: Real dataset directory with patient-level train/val/test splits.
        synthetic: Synthetic dataset directory (every row is training material). Without
            it only TRTR and the low-data baseline run.
        out: The metrics JSON file to write.
        preset: Classifier recipe: ``paper`` (seed 000's ViT), ``cpu``, ``quick``.
        epochs, image_size, batch_size, lr: Overrides of the preset.
        seeds: One model per seed and condition; metrics are averaged over seeds.
        task: ``binary`` (tumour vs none) or ``multiclass`` (none/glioma/meningioma/pituitary).
        conditions: Which of trtr, tstr, mix, low, low+synth to run.
        ratios: Synthetic images per real training image for the ``mix`` conditions.
        tstr_size: ``match`` = as many synthetic images as real training images; ``all``.
        low_data_fraction: Fraction of the real training patients in the low-data regime.
        low_data_synthetic: Synthetic images added in the low-data regime (None: as many as
            the *full* real training set).
        bootstrap: Bootstrap replicates for the intervals.
        ci_level: Confidence level of the intervals.
        threads: CPU threads for torch (None: torch's default).
        device: Where the classifiers train: ``auto`` (the GPU when present), ``cpu``,
            ``cuda``... Results on a GPU match the CPU's up to floating-point order.
    """

    model_config = ConfigDict(extra="forbid")

    real: Path
    synthetic: Path | None = None
    out: Path
    preset: str = "cpu"
    epochs: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=8)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    task: Literal["binary", "multiclass"] = "binary"
    conditions: list[str] = Field(default_factory=lambda: list(CONDITIONS))
    ratios: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    tstr_size: Literal["match", "all"] = "match"
    low_data_fraction: float = Field(0.1, gt=0, lt=1)
    low_data_synthetic: int | None = Field(None, ge=1)
    bootstrap: int = Field(1000, ge=10)
    ci_level: float = Field(0.95, gt=0, lt=1)
    threads: int | None = Field(None, ge=1)
    device: str = "auto"

    @model_validator(mode="after")
    def _check(self) -> DownstreamConfig:
        if self.preset not in preset_names():
            raise ValueError(f"unknown preset {self.preset!r}; valid presets: {', '.join(preset_names())}")
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad:
            raise ValueError(f"unknown conditions {bad}; valid: {', '.join(CONDITIONS)}")
        if any(r <= 0 for r in self.ratios):
            raise ValueError(f"ratios must be positive, got {self.ratios}")
        return self

    def resolve_preset(self, data_channels: int) -> ClassifierPreset:
        """The preset with this config's overrides, the task's class count and the data's channels."""
        p = get_preset(self.preset)
        model_update: dict[str, Any] = {"num_classes": len(CLASS_NAMES[self.task]),
                                        "channels": p.channels or data_channels}
        if self.image_size is not None:
            model_update["image_size"] = self.image_size
        model = type(p.model).model_validate({**p.model.model_dump(), **model_update})
        train = p.train.model_copy(update={k: v for k, v in (("epochs", self.epochs), ("batch_size", self.batch_size),
                                                               ("lr", self.lr)) if v is not None})
        return ClassifierPreset(model=model, train=train, channels=model.channels)


@dataclass
class _Data:
    """Images (float16, model size) and labels of one source, with patient ids."""

    records: list[DatasetRecord]
    images: torch.Tensor
    labels: torch.Tensor

    @property
    def patients(self) -> list[str]:
        return [r.patient_id or r.file_name for r in self.records]


def _load(ds: ImageDataset, records: list[DatasetRecord], size: int, task: str, desc: str,
          progress: bool) -> _Data:
    return _Data(records, load_images(ds, records, size, progress=progress, desc=desc), labels_for(records, task))


def _check_splits(real: ImageDataset, task: str) -> dict[str, list[DatasetRecord]]:
    splits = {s: real.split(s) for s in ("train", "val", "test")}
    if not splits["train"] or not splits["test"]:
        found = {k: len(v) for k, v in splits.items()}
        raise DataError(f"needs patient-level 'train' and 'test' splits (found {found}); assign them with "
                        "`synthmed data split`", real.root)
    test_patients = {r.patient_id for r in splits["test"] if r.patient_id}
    leaked = sorted(test_patients & {r.patient_id for r in splits["train"] + splits["val"] if r.patient_id})
    if leaked:
        raise DataError(f"patients {leaked[:5]}{'...' if len(leaked) > 5 else ''} are in the test split and in "
                        "train/val; the test set must be held out by patient", real.root / "metadata.jsonl")
    classes = set(labels_for(splits["test"], task).tolist())
    if len(classes) < 2:
        raise DataError(f"the real test split has a single class ({[CLASS_NAMES[task][c] for c in classes]}); "
                        "sensitivity, specificity and AUROC need both", real.root)
    return splits


def patient_subset(patients: list[str], labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a random ``fraction`` of patients, stratified by the patient's first label."""
    by_patient: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        by_patient.setdefault(p, []).append(i)
    chosen: list[int] = []
    for cls in np.unique(labels):
        group = sorted(p for p, rows in by_patient.items() if labels[rows[0]] == cls)
        k = max(1, int(round(fraction * len(group))))
        for p in rng.permutation(group)[:k]:
            chosen.extend(by_patient[str(p)])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _plan(cfg: DownstreamConfig, real: _Data, synth: _Data | None,
          seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(condition name, real row indices, synthetic row indices) for one seed."""
    rng = np.random.default_rng([seed, 1009])
    n_real, n_syn = len(real.records), len(synth.records) if synth is not None else 0
    all_real = np.arange(n_real)
    none = np.zeros(0, dtype=np.int64)
    plan: list[tuple[str, np.ndarray, np.ndarray]] = []

    def synth_sample(k: int, name: str) -> np.ndarray:
        if k > n_syn:
            logger.warning("%s: asked for %d synthetic images, only %d exist; using all", name, k, n_syn)
        return np.sort(rng.permutation(n_syn)[:min(k, n_syn)])

    if "trtr" in cfg.conditions:
        plan.append(("TRTR", all_real, none))
    if synth is not None and "tstr" in cfg.conditions:
        plan.append(("TSTR", none, synth_sample(n_real if cfg.tstr_size == "match" else n_syn, "TSTR")))
    if synth is not None and "mix" in cfg.conditions:
        for r in cfg.ratios:
            plan.append((f"R+Sx{r:g}", all_real, synth_sample(int(round(r * n_real)), f"R+Sx{r:g}")))
    if "low" in cfg.conditions or "low+synth" in cfg.conditions:
        low = patient_subset(real.patients, real.labels.numpy(), cfg.low_data_fraction, rng)
        if "low" in cfg.conditions:
            plan.append(("lowR", low, none))
        if synth is not None and "low+synth" in cfg.conditions:
            plan.append(("lowR+S", low, synth_sample(cfg.low_data_synthetic or n_real, "lowR+S")))
    return plan


def _train_one(preset: ClassifierPreset, real: _Data, synth: _Data | None, real_idx: np.ndarray,
               syn_idx: np.ndarray, val: _Data | None, test: _Data, seed: int, desc: str,
               device: torch.device) -> tuple[np.ndarray, int]:
    parts_x = [real.images[torch.from_numpy(real_idx)]]
    parts_y = [real.labels[torch.from_numpy(real_idx)]]
    if synth is not None and len(syn_idx):
        parts_x.append(synth.images[torch.from_numpy(syn_idx)])
        parts_y.append(synth.labels[torch.from_numpy(syn_idx)])
    x, y = torch.cat(parts_x), torch.cat(parts_y)
    torch.manual_seed(seed)
    model = build_classifier(preset.model).to(device)
    channels = preset.model.channels

    def loss_fn(out: Any, target: Any) -> torch.Tensor:
        return F.cross_entropy(out, target)

    def accuracy(out: Any, target: Any) -> float:
        return float((out.argmax(1) == target).float().mean())

    result = fit(model, x, y, preset.train, channels=channels, loss_fn=loss_fn, score_fn=accuracy,
                 val=(val.images, val.labels) if val is not None and len(val.records) else None,
                 seed=seed, progress=False, desc=desc)
    probs = predict(model, test.images, channels, preset.train.eval_batch_size).softmax(dim=1).numpy()
    return probs, result.best_epoch


def evaluate_downstream(cfg: DownstreamConfig, *, progress: bool = True) -> DownstreamReport:
    """Run the downstream protocol and write ``cfg.out`` (metrics JSON)."""
    real_ds = ImageDataset(cfg.real)
    splits = _check_splits(real_ds, cfg.task)
    synth_ds = ImageDataset(cfg.synthetic) if cfg.synthetic is not None else None
    if synth_ds is not None and not synth_ds.records:
        raise DataError("the synthetic dataset has no rows", cfg.synthetic)
    if synth_ds is None and any(c in cfg.conditions for c in ("tstr", "mix", "low+synth")):
        logger.warning("no --synthetic dataset: running only %s",
                       ", ".join(c for c in cfg.conditions if c in ("trtr", "low")) or "nothing")
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        size = cfg.image_size or get_preset(cfg.preset).model.image_size
        real = _load(real_ds, splits["train"], size, cfg.task, "load real train", progress)
        val = _load(real_ds, splits["val"], size, cfg.task, "load real val", progress) if splits["val"] else None
        test = _load(real_ds, splits["test"], size, cfg.task, "load real test", progress)
        synth = (_load(synth_ds, synth_ds.records, size, cfg.task, "load synthetic", progress)
                 if synth_ds is not None else None)
        if synth is not None:  # e.g. RGB images of an SD model next to grayscale scans: train on the real layout
            synth.images = to_channels(synth.images, int(real.images.shape[1])).to(real.images.dtype)
        preset = cfg.resolve_preset(int(real.images.shape[1]))
        if preset.model.image_size != size:
            raise ConfigError(f"image_size mismatch: {preset.model.image_size} vs {size}")
        runs: list[TrainedModel] = []
        plans = {seed: _plan(cfg, real, synth, seed) for seed in cfg.seeds}
        total = sum(len(p) for p in plans.values())
        if total == 0:
            raise ConfigError(f"nothing to run: conditions {cfg.conditions} need a --synthetic dataset")
        bar = tqdm(total=total, desc="downstream", unit="model", disable=not progress)
        for seed, plan in plans.items():
            for name, real_idx, syn_idx in plan:
                bar.set_postfix_str(f"{name} seed {seed}")
                t0 = time.perf_counter()
                probs, best = _train_one(preset, real, synth, real_idx, syn_idx, val, test, seed, f"{name}/{seed}",
                                         device)
                runs.append(TrainedModel(name, seed, len(real_idx), len(syn_idx), probs, best,
                                         time.perf_counter() - t0))
                logger.debug("%s seed %d: %d real + %d synthetic, best epoch %d, %.0f s", name, seed,
                             len(real_idx), len(syn_idx), best, runs[-1].seconds)
                bar.update(1)
        bar.close()
    finally:
        torch.set_num_threads(old_threads)
    report = summarise(runs, test.labels.numpy(), test.patients, n_boot=cfg.bootstrap, level=cfg.ci_level,
                       class_names=CLASS_NAMES[cfg.task])
    report.seconds = time.perf_counter() - started
    write_result(cfg.out, DownstreamResult(
        **report.to_json(),
        config=cfg.model_dump(mode="json"),
        classifier=preset.model_dump(mode="json"),
        device=str(device),
        data={"real": str(cfg.real), "real_hash": hash_dataset(cfg.real),
                 "synthetic": str(cfg.synthetic) if cfg.synthetic else None,
                 "synthetic_hash": hash_dataset(cfg.synthetic) if cfg.synthetic else None,
                 "n_real_train": len(real.records), "n_real_val": len(val.records) if val else 0,
                 "n_real_test": len(test.records), "n_test_patients": len(set(test.patients)),
                 "n_synthetic": len(synth.records) if synth else 0},
        provenance=provenance(),
    ))
    return report
