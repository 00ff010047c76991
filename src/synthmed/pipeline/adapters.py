"""Stage adapters for library functions that do not take one typed config.

Data stages write a dataset directory; the caption and paraphrase stages work on a copy of
their input dataset (images hard-linked where the filesystem allows), because the library
functions caption in place and a stage must never change another stage's output.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthmed.pipeline.registry import StageContext

logger = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def copy_dataset(src: Path, dst: Path) -> int:
    """Copy a dataset directory (metadata and every file its rows name); images are hard-linked if possible.

    Returns:
        The number of rows.
    """
    from synthmed.data.dataset import METADATA_FILE, read_records

    records = read_records(src)
    dst.mkdir(parents=True, exist_ok=True)
    for rec in records:
        for name in (rec.file_name, rec.mask_file_name):
            if not name:
                continue
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                os.link(src / name, target)
            except OSError:
                shutil.copy2(src / name, target)
    shutil.copy2(src / METADATA_FILE, dst / METADATA_FILE)
    return len(records)


# -- data.phantom ----------------------------------------------------------------------------
class PhantomStageConfig(_Strict):
    """Settings of ``data.phantom`` (see :class:`synthmed.data.phantom.PhantomConfig`)."""

    out: Path
    n: int = Field(2000, ge=1)
    size: int = Field(128, ge=16)
    seed: int = 0
    tumor_fraction: float = Field(0.5, ge=0, le=1)
    slices_per_patient: int = Field(4, ge=1)
    split_ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    workers: int = Field(0, ge=0)


def run_phantom(cfg: PhantomStageConfig, ctx: StageContext) -> dict[str, Any]:
    from synthmed.data.phantom import PhantomConfig, generate_phantom

    generate_phantom(PhantomConfig(**cfg.model_dump()))
    return {"rows": cfg.n, "size": cfg.size}


# -- data.import -----------------------------------------------------------------------------
class ImportStageConfig(_Strict):
    """Settings of ``data.import`` (see :func:`synthmed.data.importers.import_dataset`)."""

    format: str
    src: Path
    out: Path
    size: int | None = Field(None, ge=8)
    windowing: str | None = None
    bits: Literal[8, 16] | None = None
    strict: bool = False
    options: dict[str, Any] = Field(default_factory=dict, description="format-specific options")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        from synthmed.data.importers import available_formats

        if v not in available_formats():
            raise ValueError(f"unknown format; valid formats: {', '.join(available_formats())}")
        return v


def run_import(cfg: ImportStageConfig, ctx: StageContext) -> dict[str, Any]:
    from synthmed.data.importers import import_dataset

    report = import_dataset(cfg.format, cfg.src, cfg.out, size=cfg.size, windowing=cfg.windowing, bits=cfg.bits,
                            strict=cfg.strict, **cfg.options)
    return {"written": report.written, "skipped": len(report.skipped)}


# -- caption ---------------------------------------------------------------------------------
class CaptionStageConfig(_Strict):
    """Settings of ``caption``: caption a copy of ``data`` with ``captioner``."""

    data: Path
    out: Path
    captioner: str = "mask"
    modality: str = "brain_mri"
    batch_size: int = Field(16, ge=1)
    options: dict[str, Any] = Field(default_factory=dict, description="captioner options")


def run_caption(cfg: CaptionStageConfig, ctx: StageContext) -> dict[str, Any]:
    """Caption a copy of the dataset; score the captions against ``original_findings`` where rows keep them."""
    from synthmed.caption import caption_dataset
    from synthmed.data import read_records
    from synthmed.evaluate import attribute_agreement

    copy_dataset(cfg.data, cfg.out)
    summary = caption_dataset(cfg.out, cfg.captioner, modality=cfg.modality, batch_size=cfg.batch_size,
                              **cfg.options)
    out: dict[str, Any] = {"captioner": cfg.captioner, "rows": summary.rows, "captioned": summary.captioned,
                           "failed": summary.failed}
    pairs = [(r.findings, r.original_findings) for r in read_records(cfg.out) if r.original_findings is not None]
    if pairs:
        scores = attribute_agreement(pairs)
        out["accuracy_vs_original"] = {name: {"accuracy": agg.accuracy, "n": agg.n}
                                       for name, agg in scores.items() if agg.n and agg.missing < agg.n}
    return out


# -- paraphrase ------------------------------------------------------------------------------
class ParaphraseStageConfig(_Strict):
    """Settings of ``paraphrase``: add checked paraphrases to a copy of ``data``."""

    data: Path
    out: Path
    paraphraser: str = "template"
    per_caption: int = Field(5, ge=1)
    modality: str = "brain_mri"
    batch_size: int = Field(16, ge=1)
    options: dict[str, Any] = Field(default_factory=dict, description="paraphraser options")


def run_paraphrase(cfg: ParaphraseStageConfig, ctx: StageContext) -> dict[str, Any]:
    from synthmed.paraphrase import paraphrase_dataset

    copy_dataset(cfg.data, cfg.out)
    s = paraphrase_dataset(cfg.out, cfg.paraphraser, per_caption=cfg.per_caption, modality=cfg.modality,
                           batch_size=cfg.batch_size, **cfg.options)
    return {"paraphraser": cfg.paraphraser, "rows": s.rows, "accepted": s.accepted, "rejected": s.rejected,
            "unique_before": s.unique_before, "unique_after": s.unique_after}


# -- library functions with a typed config whose result is worth a summary --------------------
def run_judge(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from synthmed.judge import train_judge

    report = train_judge(cfg)
    return {"real_test_accuracy": {k: v.accuracy for k, v in report.real_test.items() if v.n},
            "n_train": report.n_train, "n_test": report.n_test}


def run_adherence(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from synthmed.evaluate.adherence import evaluate_adherence

    report = evaluate_adherence(cfg)
    return {"accuracy": {k: v.accuracy for k, v in report.agreements.items() if v.n}, "n": report.n,
            "judge_real_test_accuracy": report.judge_real_test_accuracy}


def run_captions_eval(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from synthmed.evaluate.captions import evaluate_captions

    report = evaluate_captions(cfg)
    accuracy = {name: {k: v.accuracy for k, v in aggs.items() if v.n} for name, aggs in report.agreements.items()}
    return {"n_reference": report.n_reference, "accuracy": accuracy}


def run_downstream(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from synthmed.evaluate.downstream import evaluate_downstream

    report = evaluate_downstream(cfg)
    return {"auroc": {name: c.mean.get("auroc") for name, c in report.conditions.items()}, "n_test": report.n_test}


def run_explain(cfg: Any, ctx: StageContext) -> dict[str, Any]:
    from synthmed.explain import explain_dataset

    result = explain_dataset(cfg)
    return {"out": str(cfg.out), "modes": result.modes}
