"""``synthmed train judge``: train the findings judge on real images and record its accuracy.

The judge scores prompt adherence of generated images, so it must be trained on *real*
images only and its own accuracy on held-out real test images must travel with it: it is
measured here, right after training, and saved in the judge directory.

Augmentation: small shifts, rotations (<= 5 degrees), zooms (<= 3 %), intensity jitter, and
degradations (Gaussian blur up to sigma 1 px, white or blotchy noise up to std 0.08) so that
a blurred or noisy slice is not read as a lesion.
No horizontal flips, ever: a flip moves a left-hemisphere tumour to the right hemisphere
(patient left is image right), so the hemisphere label would become wrong. Zooms stay
small so the size category (whose sampled sizes keep >= 2 mm from each boundary) holds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.classify.augment import AugmentConfig
from synthmed.classify.data import load_images, prepare_image
from synthmed.classify.train import FitResult, TrainConfig, fit, predict
from synthmed.data.dataset import ImageDataset, hash_dataset
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError, DataError
from synthmed.findings.agreement import BRAIN_ATTRIBUTES, AttributeAgreement, agreement_metric, full_agreement
from synthmed.findings.schema import BrainMRIFindings
from synthmed.judge.io import FindingsJudge
from synthmed.judge.model import JudgeNet, JudgeNetConfig
from synthmed.judge.targets import best_threshold, findings_targets, judge_loss, lesion_map_targets
from synthmed.utils.device import resolve_device
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.provenance import provenance

logger = logging.getLogger(__name__)

_JUDGE_AUGMENT = AugmentConfig(max_shift=0.04, max_rotation_deg=5.0, max_scale=0.03, intensity=0.1,
                               max_blur=1.0, max_noise=0.08)

#: Named judge recipes: (network, optimisation). Measured figures are in docs/evaluation-downstream.md.
JUDGE_PRESETS: dict[str, tuple[JudgeNetConfig, TrainConfig]] = {
    # The default: 128 px, lesion map at 1/2 resolution (small lesions are a few pixels wide);
    # 34 minutes on the 2-core CPU for 2,800 training images (builtin:phantom-128-robust).
    "cpu": (JudgeNetConfig(image_size=128, widths=(16, 24, 32, 64, 64), convs=(1, 2, 2, 2, 2), map_stride=2),
            TrainConfig(epochs=40, batch_size=32, lr=3e-3, warmup_steps=100, schedule="cosine", weight_decay=1e-4,
                        grad_clip=1.0, patience=8, augment=_JUDGE_AUGMENT)),
    # Smoke tests: 64 px, a narrow network, a few epochs.
    "quick": (JudgeNetConfig(image_size=64, widths=(4, 8, 16, 24, 32), hidden=32),
              TrainConfig(epochs=4, batch_size=32, lr=3e-3, warmup_steps=10, schedule="cosine", weight_decay=1e-4,
                          grad_clip=1.0, patience=None, augment=_JUDGE_AUGMENT)),
    # Larger images (real 256 px scans, or a GPU): wider and longer.
    "large": (JudgeNetConfig(image_size=256, widths=(12, 24, 48, 96, 128), hidden=192),
              TrainConfig(epochs=40, batch_size=32, lr=1e-3, warmup_steps=300, schedule="cosine",
                          weight_decay=1e-4, grad_clip=1.0, patience=10, augment=_JUDGE_AUGMENT)),
}


def judge_preset(name: str) -> tuple[JudgeNetConfig, TrainConfig]:
    """The (network, optimisation) configs of a judge preset.

    Raises:
        ConfigError: listing the valid names.
    """
    if name not in JUDGE_PRESETS:
        raise ConfigError(f"unknown judge preset {name!r}; valid presets: {', '.join(JUDGE_PRESETS)}")
    net, train = JUDGE_PRESETS[name]
    return net.model_copy(deep=True), train.model_copy(deep=True)


class JudgeTrainConfig(BaseModel):
    """What ``synthmed train judge`` does (YAML, flags or Python).

    Attributes:
        data: Real dataset directory with train/val/test splits and brain findings.
        out: Judge directory to write.
        preset: Base recipe (``cpu``, ``quick``, ``large``); the fields below override it.
        image_size, epochs, batch_size, lr: Overrides of the preset.
        seed: Seeds weight initialisation, shuffling and augmentation.
        reference: Which findings are the truth: ``original`` uses ``original_findings``
            when a row has them (the ground truth kept when a dataset was re-captioned) and
            ``findings`` otherwise; ``findings`` always uses ``findings``.
        max_train: Use at most this many training rows (whole patients, for speed).
        map_weight: Weight of the dense lesion-map loss (rows with masks).
        head_weight: Weight of the attribute heads' mean cross-entropy.
        threads: CPU threads for torch (None: torch's default).
        device: Where to train: ``auto`` (the GPU when present), ``cpu``, ``cuda``...; the
            saved judge and its real-test figures are computed on the CPU either way.
        network: Full architecture override (optional).
        train: Full optimisation override (optional); horizontal flips are refused.
    """

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path
    preset: str = "cpu"
    image_size: int | None = Field(None, ge=32)
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    seed: int = 0
    reference: Literal["original", "findings"] = "original"
    max_train: int | None = Field(None, ge=1)
    map_weight: float = Field(1.0, ge=0)
    head_weight: float = Field(2.0, ge=0)
    threads: int | None = Field(None, ge=1)
    device: str = "auto"
    network: JudgeNetConfig | None = None
    train: TrainConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> JudgeTrainConfig:
        if self.preset not in JUDGE_PRESETS:
            raise ValueError(f"unknown judge preset {self.preset!r}; valid presets: {', '.join(JUDGE_PRESETS)}")
        if self.train is not None and self.train.augment.hflip:
            raise ValueError("train.augment.hflip must be false for the judge: a horizontal flip swaps the "
                             "tumour's hemisphere, so the hemisphere label would be wrong")
        return self

    def resolve(self) -> tuple[JudgeNetConfig, TrainConfig]:
        """The network and optimisation configs after applying overrides to the preset."""
        net, train = judge_preset(self.preset)
        if self.network is not None:
            net = self.network.model_copy(deep=True)
        if self.train is not None:
            train = self.train.model_copy(deep=True)
        updates = {k: v for k, v in (("epochs", self.epochs), ("batch_size", self.batch_size), ("lr", self.lr))
                   if v is not None}
        train = train.model_copy(update=updates)
        if self.image_size is not None:
            net = JudgeNetConfig.model_validate({**net.model_dump(), "image_size": self.image_size})
        return net, train


@dataclass
class JudgeReport:
    """What :func:`train_judge` produced."""

    path: Path
    real_test: dict[str, AttributeAgreement]
    fit: FitResult
    seconds: float
    n_train: int
    n_test: int
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self) -> dict[str, float | None]:
        """Per-attribute accuracy on the real test images."""
        return {k: v.accuracy for k, v in self.real_test.items()}


def reference_findings(rec: DatasetRecord, reference: str, meta: Path) -> BrainMRIFindings:
    """The reference (true) findings of a real row."""
    f = rec.original_findings if reference == "original" and rec.original_findings is not None else rec.findings
    if not isinstance(f, BrainMRIFindings):
        raise DataError(f"row {rec.file_name!r} has no brain-MRI findings to train or test the judge on", meta)
    return f


def _split_records(ds: ImageDataset, max_train: int | None, seed: int) -> dict[str, list[DatasetRecord]]:
    splits = {s: ds.split(s) for s in ("train", "val", "test")}
    if not splits["train"] or not splits["test"]:
        raise DataError("the judge needs patient-level 'train' and 'test' splits (found "
                        f"{ {k: len(v) for k, v in splits.items()} }); assign them with `synthmed data split`",
                        ds.root)
    if max_train is not None and len(splits["train"]) > max_train:
        patients = sorted({r.patient_id or r.file_name for r in splits["train"]})
        order = torch.randperm(len(patients), generator=torch.Generator().manual_seed(seed)).tolist()
        keep, count, by_patient = set(), 0, {}
        for r in splits["train"]:
            by_patient.setdefault(r.patient_id or r.file_name, []).append(r)
        for i in order:
            if count >= max_train:
                break
            keep.add(patients[i])
            count += len(by_patient[patients[i]])
        splits["train"] = [r for r in splits["train"] if (r.patient_id or r.file_name) in keep]
    return splits


def _require_both_classes(ds: ImageDataset, records: list[DatasetRecord], reference: str) -> None:
    """Refuse a train split that is all healthy or all tumour: its test accuracy would mean nothing."""
    present = {reference_findings(r, reference, ds.root / "metadata.jsonl").tumor_present for r in records}
    if len(present) < 2:
        kind = "tumour" if present == {True} else "healthy"
        raise DataError(f"every one of the {len(records)} 'train' rows is {kind}; the judge needs both healthy "
                        "and tumour images to learn presence (and any accuracy it reported would be trivial)",
                        ds.root / "metadata.jsonl")


def _targets(ds: ImageDataset, records: list[DatasetRecord], net: JudgeNetConfig, reference: str
             ) -> dict[str, torch.Tensor]:
    meta = ds.root / "metadata.jsonl"
    findings = [reference_findings(r, reference, meta) for r in records]
    t = findings_targets(findings, net.attributes)
    masks = []
    for r in records:
        m = ds.mask(r)
        masks.append(None if m is None else prepare_image(m, net.image_size))
    t["lesion_map"], t["map_valid"] = lesion_map_targets(masks, net.map_size)
    return t


def evaluate_judge(judge: FindingsJudge, ds: ImageDataset, records: list[DatasetRecord], reference: str = "original",
                   *, progress: bool = False) -> dict[str, AttributeAgreement]:
    """Per-attribute agreement of the judge's findings with the reference findings of ``records``."""
    meta = ds.root / "metadata.jsonl"
    refs = [reference_findings(r, reference, meta) for r in records]
    preds = judge.predict_dataset(ds, records, progress=progress)
    attrs = tuple(a for a in BRAIN_ATTRIBUTES if a == "tumor_present" or a in judge.config.attributes)
    return full_agreement(zip(preds, refs, strict=True), attrs)


@writes_to(first_argument("cfg", "out"))
def train_judge(cfg: JudgeTrainConfig, *, progress: bool = True) -> JudgeReport:
    """Train a findings judge on the real dataset ``cfg.data`` and save it to ``cfg.out``.

    Trains on the ``train`` split, selects the epoch by ``val`` loss, and measures the
    per-attribute accuracy on the ``test`` split, which is saved with the judge.
    """
    net_cfg, train_cfg = cfg.resolve()
    start = time.perf_counter()
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        ds = ImageDataset(cfg.data)
        splits = _split_records(ds, cfg.max_train, cfg.seed)
        _require_both_classes(ds, splits["train"], cfg.reference)
        logger.info("judge: %d train, %d val, %d test images at %d px", len(splits["train"]), len(splits["val"]),
                    len(splits["test"]), net_cfg.image_size)
        images = {s: load_images(ds, recs, net_cfg.image_size, progress=progress, desc=f"load {s}")
                  for s, recs in splits.items() if s != "test"}
        channels = int(images["train"].shape[1])
        net_cfg = net_cfg.model_copy(update={"channels": channels})
        targets = {s: _targets(ds, splits[s], net_cfg, cfg.reference) for s in images}
        torch.manual_seed(cfg.seed)
        net = JudgeNet(net_cfg).to(resolve_device(cfg.device))

        def loss_fn(out: Any, tgt: Any) -> torch.Tensor:
            return judge_loss(out, tgt, map_weight=cfg.map_weight, head_weight=cfg.head_weight)

        def presence_accuracy(out: Any, tgt: Any) -> float:
            return float(((out["tumor_present"] > 0).float() == tgt["tumor_present"]).float().mean())

        val = (images["val"], targets["val"]) if splits["val"] else None
        result = fit(net, images["train"], targets["train"], train_cfg, channels=channels, loss_fn=loss_fn, val=val,
                     score_fn=presence_accuracy, spatial_targets=("lesion_map",), seed=cfg.seed, progress=progress,
                     desc="train judge")
        net.cpu()
        if val is not None:  # set the presence threshold on real validation images, not on test
            out = predict(net, images["val"], channels, train_cfg.eval_batch_size)
            threshold = best_threshold(out["tumor_present"], targets["val"]["tumor_present"])  # type: ignore[index]
            net.config = net_cfg = net_cfg.model_copy(update={"presence_threshold": threshold})
        judge = FindingsJudge(net)
        real_test = evaluate_judge(judge, ds, splits["test"], cfg.reference, progress=False)
        seconds = time.perf_counter() - start
        metrics = {
            "split": "test", "n": len(splits["test"]), "dataset": str(cfg.data),
            "accuracy": {k: v.accuracy for k, v in real_test.items()},
            "attributes": {k: agreement_metric(v).model_dump(mode="json") for k, v in real_test.items()},
        }
        judge.real_test_metrics = metrics
        judge.save_pretrained(cfg.out, provenance=provenance(
            kind="findings-judge", config=cfg.model_dump(mode="json"), network=net_cfg.model_dump(mode="json"),
            optimisation=train_cfg.model_dump(mode="json"), seed=cfg.seed, data_hash=hash_dataset(cfg.data),
            n_train=len(splits["train"]), n_val=len(splits["val"]), best_epoch=result.best_epoch,
            history=result.history, seconds=round(seconds, 1), real_test_accuracy=metrics["accuracy"]))
    finally:
        torch.set_num_threads(old_threads)
    logger.info("judge saved to %s in %.0f s; real-test accuracy: %s", cfg.out, seconds,
                ", ".join(f"{k} {v:.3f}" for k, v in metrics["accuracy"].items() if v is not None))
    return JudgeReport(Path(cfg.out), real_test, result, seconds, len(splits["train"]), len(splits["test"]))
