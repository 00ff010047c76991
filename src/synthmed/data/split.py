"""Patient-level train/val/test splits.

All images of one patient land in one split, so a model is never tested on a patient it
was trained on. The assignment is seeded and deterministic: the same rows, ratios and seed
give the same split on any machine.

Algorithm: patients are grouped into strata by the most common value of ``stratify_by``
among their rows (e.g. their label); strata are taken in sorted order and the patients of
each in a seeded random order. Each patient goes to the split whose row count lags its
target share the most (target = ratio x rows assigned so far, this patient included), so
the row shares follow the ratios overall and, because the lag carries over from stratum to
stratum, within every stratum up to about one patient. Very small strata may therefore
land in one split only: stratification is done "when possible".
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.data.dataset import read_records, write_records
from synthmed.data.records import SPLITS, DatasetRecord
from synthmed.errors import ConfigError
from synthmed.utils.outdir import first_argument, writes_to

logger = logging.getLogger(__name__)

_MISSING = ""


@dataclass
class SplitReport:
    """What :func:`split_by_patient` did.

    Attributes:
        rows: Rows per split.
        patients: Patients per split (a row without ``patient_id`` counts as one patient).
        rows_without_patient: Rows that had no ``patient_id``.
        kept: Rows whose existing split was kept (``keep_existing=True``).
        changed: Rows whose split changed.
        stratified_by: The field used for stratification, or None.
        shared_patients: Patients found in several splits; only possible when existing
            splits were kept and already mixed a patient.
    """

    rows: dict[str, int] = field(default_factory=dict)
    patients: dict[str, int] = field(default_factory=dict)
    rows_without_patient: int = 0
    kept: int = 0
    changed: int = 0
    stratified_by: str | None = None
    shared_patients: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a terminal."""
        parts = ", ".join(f"{s}: {self.rows.get(s, 0)} rows / {self.patients.get(s, 0)} patients"
                          for s in SPLITS)
        return f"{parts}; {self.changed} rows changed, {self.kept} kept"


def parse_ratios(ratios: Sequence[float] | str) -> tuple[float, float, float]:
    """Validate train/val/test ratios (a sequence or "0.8,0.1,0.1"); they must sum to 1.

    Raises:
        ConfigError: not three non-negative numbers summing to 1.
    """
    if isinstance(ratios, str):
        try:
            ratios = [float(x) for x in ratios.split(",")]
        except ValueError as err:
            raise ConfigError(f"ratios must be three numbers like 0.8,0.1,0.1, got {ratios!r}") from err
    values = tuple(float(x) for x in ratios)
    if len(values) != 3 or any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"ratios must be three non-negative numbers (train, val, test), got {values}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ConfigError(f"ratios must sum to 1, got {values} (sum {sum(values):g})")
    return values  # type: ignore[return-value]


def record_value(rec: DatasetRecord, path: str) -> Any:
    """A row's field by name, ``"findings.<attribute>"`` for a findings attribute; None if unset."""
    obj: Any = rec
    for part in path.split("."):
        if obj is None:
            return None
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def _check_field(records: list[DatasetRecord], path: str) -> None:
    head = path.split(".")[0]
    known = set(DatasetRecord.model_fields) | {k for r in records for k in (r.model_extra or {})}
    if head not in known:
        raise ConfigError(f"cannot stratify by {path!r}: rows have no such field; use one of "
                          f"{', '.join(sorted(known))} or findings.<attribute>")


def _majority(values: list[Any]) -> str:
    present = [str(v) for v in values if v is not None]
    if not present:
        return _MISSING
    counts = Counter(present)
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)  # ties -> the first in sorted order


@writes_to(first_argument("root"))
def split_by_patient(root: str | Path, ratios: Sequence[float] | str = (0.8, 0.1, 0.1), seed: int = 0,
                     stratify_by: str | None = "label", *, keep_existing: bool = False) -> SplitReport:
    """Assign every row of a dataset to train/val/test by patient, and rewrite its metadata.

    Args:
        root: The dataset directory.
        ratios: Target shares of rows for train, val and test; they must sum to 1.
        seed: Seed of the patient order; the same seed gives the same split.
        stratify_by: Row field to balance across splits (``"label"``, or e.g.
            ``"findings.tumor_type"``); None for no stratification.
        keep_existing: Keep the splits rows already have (e.g. the Kaggle Training/Testing
            folders) and assign only the others; the patient of a kept row keeps its split.

    Returns:
        Rows and patients per split.

    Raises:
        ConfigError: invalid ratios or an unknown ``stratify_by`` field.
        DataError: the dataset's metadata is missing or invalid.
    """
    root = Path(root)
    shares = parse_ratios(ratios)
    records = read_records(root, check_files=False)
    report = SplitReport(stratified_by=stratify_by)
    if stratify_by is not None:
        _check_field(records, stratify_by)
        if all(record_value(r, stratify_by) is None for r in records):
            logger.warning("no row has a value for %r; splitting without stratification", stratify_by)
            report.stratified_by = None

    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        key = f"patient:{rec.patient_id}" if rec.patient_id else f"row:{rec.file_name}"
        groups.setdefault(key, []).append(i)
    report.rows_without_patient = sum(1 for r in records if not r.patient_id)
    if report.rows_without_patient:
        logger.warning("%d row(s) have no patient_id; each is treated as its own patient, so images of one "
                       "real patient may land in different splits", report.rows_without_patient)

    assigned: dict[str, str] = {}
    row_counts = dict.fromkeys(SPLITS, 0)
    if keep_existing:
        for key, rows in groups.items():
            existing = [records[i].split for i in rows if records[i].split]
            if existing:
                assigned[key] = Counter(existing).most_common(1)[0][0]
                row_counts[assigned[key]] += len(rows)
                if len(set(existing)) > 1:
                    report.shared_patients.append(key.split(":", 1)[1])
        if report.shared_patients:
            logger.warning("%d patient(s) already span several splits and were kept so: %s",
                           len(report.shared_patients), ", ".join(report.shared_patients[:5]))

    strata: dict[str, list[str]] = {}
    for key in sorted(k for k in groups if k not in assigned):
        values = [record_value(records[i], report.stratified_by) for i in groups[key]] \
            if report.stratified_by else []
        strata.setdefault(_majority(values), []).append(key)
    rng = np.random.default_rng(seed)
    total = sum(row_counts.values())
    for stratum in sorted(strata):
        keys = strata[stratum]
        for j in rng.permutation(len(keys)):
            key = keys[j]
            n = len(groups[key])
            lag = [shares[s] * (total + n) - row_counts[split] for s, split in enumerate(SPLITS)]
            choice = SPLITS[int(np.argmax(lag))]
            assigned[key] = choice
            row_counts[choice] += n
            total += n

    patients: dict[str, set[str]] = {s: set() for s in SPLITS}
    for key, rows in groups.items():
        for i in rows:
            rec = records[i]
            split = rec.split if keep_existing and rec.split else assigned[key]
            report.kept += int(keep_existing and rec.split is not None)
            report.changed += int(split != rec.split)
            records[i] = rec.model_copy(update={"split": split})
            patients[split].add(key)
    write_records(root, records)
    report.rows = {s: sum(1 for r in records if r.split == s) for s in SPLITS}
    report.patients = {s: len(patients[s]) for s in SPLITS}
    logger.debug("split %s: %s", root, report.summary())
    return report
