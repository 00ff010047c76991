"""``synthmed evaluate adherence``: does each generated image show what its prompt asked for?

A findings judge trained on real images only (``synthmed train judge``) reads findings back
from every generated image; they are compared with the row's ``requested_findings``
attribute by attribute, in the layout of seed 000's table, with confusion matrices and
Wilson 95 % intervals. The judge's own accuracy on real test images (measured when it was
trained and stored in its directory) is reported beside each number: an adherence figure
is only as trustworthy as the judge that produced it, and attributes the judge itself gets
wrong on real images are flagged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synthmed.data.dataset import METADATA_FILE, ImageDataset, hash_dataset
from synthmed.errors import DataError
from synthmed.findings.agreement import (
    BRAIN_ATTRIBUTES,
    AttributeAgreement,
    agreement_metric,
    full_agreement,
    seed000_row,
)
from synthmed.findings.schema import BrainMRIFindings
from synthmed.results import AdherenceResult, write_result
from synthmed.utils.provenance import provenance

logger = logging.getLogger(__name__)


class AdherenceConfig(BaseModel):
    """What ``synthmed evaluate adherence`` scores.

    Attributes:
        fake: Generated dataset directory; every row needs ``requested_findings``.
        judge: Judge directory written by ``synthmed train judge``, or ``builtin:<name>``
            for a judge shipped with synthmed (``builtin:phantom-128-robust``).
        out: Where to write the JSON report (optional).
        batch_size: Images per judge forward pass.
        threshold: Presence probability above which the judge says "tumour" (None: the
            judge's own, set on real validation images when it was trained).
        min_judge_accuracy: Flag attributes whose judge accuracy on real test images is below this.
    """

    model_config = ConfigDict(extra="forbid")

    fake: Path
    judge: Path
    out: Path | None = None
    batch_size: int = Field(64, ge=1)
    threshold: float | None = Field(None, gt=0, lt=1)
    min_judge_accuracy: float = Field(0.9, ge=0, le=1)


@dataclass
class AdherenceReport:
    """Per-attribute adherence of a generated dataset, and how far to trust the judge."""

    agreements: dict[str, AttributeAgreement]
    judge_real_test_accuracy: dict[str, float | None]
    n: int
    unreliable: list[str] = field(default_factory=list)

    def to_result(self, **record: Any) -> AdherenceResult:
        """The stage result, with ``record`` (inputs, provenance) added."""
        return AdherenceResult(n=self.n, table=seed000_row(self.agreements),
                               attributes={k: agreement_metric(v) for k, v in self.agreements.items()},
                               judge_real_test_accuracy=self.judge_real_test_accuracy,
                               judge_unreliable_attributes=self.unreliable, **record)


def requested_findings(root: str | Path) -> tuple[ImageDataset, list[BrainMRIFindings]]:
    """Open a generated dataset and return its rows' ``requested_findings``.

    Raises:
        DataError: naming ``metadata.jsonl`` and the line of the first row without brain-MRI
            ``requested_findings``.
    """
    ds = ImageDataset(root)
    meta = ds.root / METADATA_FILE
    # read_records skips blank lines; recover each row's line number for the error message.
    lines = [i for i, text in enumerate(meta.read_text(encoding="utf-8").splitlines(), start=1) if text.strip()]
    out: list[BrainMRIFindings] = []
    for rec, lineno in zip(ds.records, lines, strict=True):
        if not isinstance(rec.requested_findings, BrainMRIFindings):
            what = "no requested_findings" if rec.requested_findings is None else "non-brain requested_findings"
            raise DataError(f"row {rec.file_name!r} has {what}; adherence needs what each image was asked to "
                            "show (rows written by `synthmed generate` have it)", meta, lineno)
        out.append(rec.requested_findings)
    if not out:
        raise DataError("the generated dataset has no rows", meta)
    return ds, out


def evaluate_adherence(cfg: AdherenceConfig, *, progress: bool = True) -> AdherenceReport:
    """Judge every generated image against its requested findings; write ``cfg.out`` if set."""
    from synthmed.judge.io import FindingsJudge

    ds, requested = requested_findings(cfg.fake)  # check the input before loading the model
    judge = FindingsJudge.from_pretrained(cfg.judge)
    observed = judge.predict_dataset(ds, batch_size=cfg.batch_size, threshold=cfg.threshold, progress=progress)
    attrs = tuple(a for a in BRAIN_ATTRIBUTES if a == "tumor_present" or a in judge.config.attributes)
    agreements = full_agreement(zip(observed, requested, strict=True), attrs)
    judge_acc: dict[str, float | None] = dict(judge.real_test_metrics.get("accuracy", {}))
    below = judge.unreliable_attributes(cfg.min_judge_accuracy)
    unreliable = [a for a in agreements if a in below]
    if unreliable:
        logger.warning("the judge's own real-test accuracy is below %.2f for %s: read those adherence figures "
                       "with care", cfg.min_judge_accuracy, ", ".join(unreliable))
    report = AdherenceReport(agreements, judge_acc, len(requested), unreliable)
    if cfg.out is not None:
        write_result(cfg.out, report.to_result(fake=str(cfg.fake), judge=str(cfg.judge), threshold=cfg.threshold,
                                               fake_hash=hash_dataset(cfg.fake),
                                               judge_real_test=judge.real_test_metrics, provenance=provenance()))
    return report

