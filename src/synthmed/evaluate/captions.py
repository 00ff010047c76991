"""``synthmed evaluate captions``: how often a captioner's findings agree with the reference.

Predictions come from a dataset directory (each row's ``findings`` and ``captioner``) or a
JSON / JSONL file of ``{"file_name", "findings", "captioner"?}`` objects; the reference is a
dataset directory whose ``original_findings`` (the ground truth kept when it was
re-captioned) are used when present, else its ``findings``. Rows are matched by
``file_name`` (or, when unambiguous, by the bare file name). Every reference row a
captioner has no prediction for — never captioned, failed (``caption_error``), or
``findings: null`` — counts as wrong on every attribute the reference states.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from synthmed.data.dataset import METADATA_FILE, read_records
from synthmed.errors import DataError
from synthmed.findings.agreement import (
    BRAIN_ATTRIBUTES,
    AttributeAgreement,
    agreement_metric,
    full_agreement,
    seed000_row,
)
from synthmed.findings.schema import BrainMRIFindings, findings_from_dict
from synthmed.results import CaptionerScores, CaptionsResult, write_result
from synthmed.utils.provenance import provenance

logger = logging.getLogger(__name__)

Predictions = dict[str, dict[str, BrainMRIFindings | None]]  # captioner -> file_name -> findings


class CaptionEvalConfig(BaseModel):
    """What ``synthmed evaluate captions`` compares.

    Attributes:
        pred: A dataset directory, or a ``.json`` / ``.jsonl`` file of predictions.
        ref: The reference dataset directory.
        out: Where to write the JSON report (optional).
        name: Captioner name for predictions without a ``captioner`` field
            (default: the prediction file's stem, or "unknown" for a directory).
    """

    model_config = ConfigDict(extra="forbid")

    pred: Path
    ref: Path
    out: Path | None = None
    name: str | None = None


@dataclass
class CaptionReport:
    """Per-captioner agreement with the reference."""

    agreements: dict[str, dict[str, AttributeAgreement]]
    n_reference: int
    missing: dict[str, int] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)

    def to_result(self, **record: Any) -> CaptionsResult:
        """The stage result, with ``record`` (inputs, provenance) added."""
        return CaptionsResult(
            n_reference=self.n_reference,
            table={name: seed000_row(a) for name, a in self.agreements.items()},
            captioners={name: CaptionerScores(missing_predictions=self.missing.get(name, 0),
                                              unmatched_predictions=self.unmatched.get(name, 0),
                                              attributes={k: agreement_metric(v) for k, v in aggs.items()})
                        for name, aggs in self.agreements.items()},
            **record)


def _parse_findings(value: Any, where: Path, line: int | None) -> BrainMRIFindings | None:
    if value is None:
        return None
    try:
        f = findings_from_dict(value) if isinstance(value, dict) else None
    except (ValidationError, ValueError) as err:
        raise DataError(f"invalid findings: {err}", where, line) from err
    if not isinstance(f, BrainMRIFindings):
        raise DataError(f"expected brain-MRI findings (an object with modality 'brain_mri'), got {value!r}",
                        where, line)
    return f


def _add(preds: Predictions, captioner: str, file_name: str, findings: BrainMRIFindings | None,
         where: Path, line: int | None) -> None:
    bucket = preds.setdefault(captioner, {})
    if file_name in bucket:
        raise DataError(f"duplicate prediction for {file_name!r} by captioner {captioner!r}", where, line)
    bucket[file_name] = findings


def load_predictions(pred: str | Path, default_name: str | None = None) -> Predictions:
    """Read predictions from a dataset directory or a JSON/JSONL file, grouped by captioner.

    Raises:
        DataError: naming the file and line of a malformed prediction.
    """
    pred = Path(pred)
    preds: Predictions = {}
    if pred.is_dir():
        name = default_name or "unknown"
        for rec in read_records(pred, check_files=False):
            ok = rec.caption_error is None and isinstance(rec.findings, BrainMRIFindings)
            _add(preds, rec.captioner or name, rec.file_name, rec.findings if ok else None,  # type: ignore[arg-type]
                 pred / METADATA_FILE, None)
        return preds
    if not pred.is_file():
        raise DataError("predictions not found: expected a dataset directory or a .json/.jsonl file", pred)
    name = default_name or pred.stem
    text = pred.read_text(encoding="utf-8")
    items: list[tuple[int | None, Any]] = []
    if pred.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append((lineno, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataError(f"invalid JSON ({err.msg} at column {err.colno})", pred, lineno) from err
    elif pred.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON ({err.msg})", pred, err.lineno) from err
        if isinstance(data, dict) and isinstance(data.get("predictions"), list):
            name = str(data.get("captioner") or name)
            data = data["predictions"]
        if not isinstance(data, list):
            raise DataError('expected a list of {"file_name", "findings"} objects or {"predictions": [...]}', pred)
        items = [(None, obj) for obj in data]
    else:
        raise DataError(f"unsupported predictions file type {pred.suffix!r}; use .json or .jsonl", pred)
    for i, (lineno, obj) in enumerate(items):
        where = lineno if lineno is not None else None
        if not isinstance(obj, dict) or not isinstance(obj.get("file_name"), str):
            raise DataError(f"prediction {i + 1} needs a string 'file_name'", pred, where)
        if "findings" not in obj:
            raise DataError(f"prediction for {obj['file_name']!r} has no 'findings' (use null for a failure)",
                            pred, where)
        _add(preds, str(obj.get("captioner") or name), obj["file_name"],
             _parse_findings(obj["findings"], pred, where), pred, where)
    return preds


def load_reference(ref: str | Path) -> dict[str, BrainMRIFindings]:
    """file_name -> reference findings (``original_findings`` when present, else ``findings``)."""
    out: dict[str, BrainMRIFindings] = {}
    skipped = 0
    for rec in read_records(ref, check_files=False):
        f = rec.original_findings if rec.original_findings is not None else rec.findings
        if isinstance(f, BrainMRIFindings):
            out[rec.file_name] = f
        else:
            skipped += 1
    if skipped:
        logger.warning("%s: %d rows without brain-MRI reference findings are not scored", ref, skipped)
    if not out:
        raise DataError("no rows with brain-MRI reference findings", Path(ref) / METADATA_FILE)
    return out


def _match(bucket: dict[str, BrainMRIFindings | None], refs: dict[str, BrainMRIFindings]
           ) -> tuple[dict[str, BrainMRIFindings | None], int]:
    """Map predictions onto reference file names, exactly or by unambiguous bare name."""
    by_base: dict[str, list[str]] = {}
    for fn in refs:
        by_base.setdefault(PurePosixPath(fn).name, []).append(fn)
    matched: dict[str, BrainMRIFindings | None] = {}
    unmatched = 0
    for fn, f in bucket.items():
        if fn in refs:
            matched[fn] = f
        elif len(by_base.get(PurePosixPath(fn).name, [])) == 1:
            matched[by_base[PurePosixPath(fn).name][0]] = f
        else:
            unmatched += 1
    return matched, unmatched


def evaluate_captions(cfg: CaptionEvalConfig) -> CaptionReport:
    """Score every captioner's predictions against the reference; write ``cfg.out`` if set."""
    refs = load_reference(cfg.ref)
    preds = load_predictions(cfg.pred, cfg.name)
    report = CaptionReport({}, len(refs))
    for name, bucket in sorted(preds.items()):
        matched, unmatched = _match(bucket, refs)
        if unmatched:
            logger.warning("captioner %r: %d predictions name files that are not in %s", name, unmatched, cfg.ref)
        pairs = [(matched.get(fn), ref) for fn, ref in refs.items()]
        report.missing[name] = sum(1 for p, _ in pairs if p is None)
        report.unmatched[name] = unmatched
        report.agreements[name] = full_agreement(pairs, BRAIN_ATTRIBUTES)
    if cfg.out is not None:
        write_result(cfg.out, report.to_result(pred=str(cfg.pred), ref=str(cfg.ref), provenance=provenance()))
    return report
