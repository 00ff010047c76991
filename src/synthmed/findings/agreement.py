"""Per-attribute agreement between predicted and reference findings.

The same computation scores a captioner against ground truth (seed 000's caption-accuracy
table) and a generator's images against their requested findings (prompt adherence):
presence is scored on every pair, every other attribute on the pairs where the reference
has a tumour and states that attribute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthmed.findings.schema import (
    BRAIN_ATTRIBUTE_VALUES,
    HEMISPHERES,
    LOBES,
    BrainMRIFindings,
)
from synthmed.results import Agreement
from synthmed.results.intervals import wilson_interval

BRAIN_ATTRIBUTES: tuple[str, ...] = (
    "tumor_present", "hemisphere", "lobe", "size_category", "shape", "intensity", "orientation", "edema",
    "mass_effect",
)


@dataclass
class AttributeAgreement:
    """Agreement on one attribute.

    Attributes:
        attribute: The findings field.
        n: Pairs scored.
        correct: Pairs where prediction equals reference.
        missing: Pairs where the prediction left the attribute unset (counted as wrong).
        confusion: (reference, prediction) -> count.
    """

    attribute: str
    n: int = 0
    correct: int = 0
    missing: int = 0
    confusion: Counter = field(default_factory=Counter)

    @property
    def accuracy(self) -> float | None:
        """correct / n, or None when nothing was scored."""
        return self.correct / self.n if self.n else None

    def to_dict(self) -> dict[str, object]:
        return {
            "attribute": self.attribute, "n": self.n, "correct": self.correct, "missing": self.missing,
            "accuracy": self.accuracy,
            "confusion": [{"reference": r, "predicted": p, "count": c} for (r, p), c in sorted(
                self.confusion.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))],
        }


def attribute_agreement(
    pairs: Iterable[tuple[BrainMRIFindings | None, BrainMRIFindings]],
    attributes: Sequence[str] = BRAIN_ATTRIBUTES,
) -> dict[str, AttributeAgreement]:
    """Score (predicted, reference) findings pairs attribute by attribute.

    A prediction of ``None`` (the captioner failed) counts as wrong on every attribute the
    reference states.
    """
    out = {a: AttributeAgreement(a) for a in attributes}
    for pred, ref in pairs:
        for a in attributes:
            if a != "tumor_present" and not ref.tumor_present:
                continue
            want = getattr(ref, a)
            if want is None:
                continue
            got = getattr(pred, a) if pred is not None else None
            agg = out[a]
            agg.n += 1
            agg.correct += int(got == want)
            agg.missing += int(got is None)
            agg.confusion[(want, got)] += 1
    return out


#: (column header, attribute) of seed 000's caption-accuracy table.
SEED000_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Tumor", "tumor_present"), ("Loc.", "location"), ("Size", "size_category"), ("Shape", "shape"),
    ("Intensity", "intensity"), ("Orient.", "orientation"),
)

#: The values of each attribute, in the order confusion matrices list them.
ATTRIBUTE_VALUES: dict[str, tuple[object, ...]] = {
    **BRAIN_ATTRIBUTE_VALUES,
    "location": tuple(f"{h} {lobe}" for h in HEMISPHERES for lobe in LOBES),
}


@dataclass(frozen=True)
class _Location:
    """A findings view with one derived attribute: the joint (hemisphere, lobe) location."""

    tumor_present: bool
    location: str | None


def _location_view(pred: BrainMRIFindings | None, ref: BrainMRIFindings) -> tuple[_Location | None, _Location]:
    if not ref.tumor_present or (ref.hemisphere is None and ref.lobe is None):
        return (None if pred is None else _Location(pred.tumor_present, None)), _Location(ref.tumor_present, None)
    want = f"{ref.hemisphere or '-'} {ref.lobe or '-'}"
    if pred is None or not pred.tumor_present or (pred.hemisphere is None and pred.lobe is None):
        return (None if pred is None else _Location(pred.tumor_present, None)), _Location(True, want)
    # Only the parts the reference states are compared.
    got = f"{pred.hemisphere if ref.hemisphere else '-'} {pred.lobe if ref.lobe else '-'}"
    return _Location(pred.tumor_present, got), _Location(True, want)


def full_agreement(pairs: Iterable[tuple[BrainMRIFindings | None, BrainMRIFindings]],
                   attributes: Sequence[str]) -> dict[str, AttributeAgreement]:
    """:func:`attribute_agreement` plus the joint ``location`` attribute of the seed-000 table."""
    pairs = list(pairs)
    out = attribute_agreement(pairs, attributes)
    loc = attribute_agreement((_location_view(p, r) for p, r in pairs), ("location",))  # type: ignore[misc]
    out["location"] = loc["location"]
    return out


def confusion_matrix(agg: AttributeAgreement) -> dict[str, Any]:
    """Rows = reference value, columns = predicted value (plus "(none)" for a missing prediction)."""
    values = list(ATTRIBUTE_VALUES.get(agg.attribute, ()))
    for ref, pred in agg.confusion:
        for v in (ref, pred):
            if v is not None and v not in values:
                values.append(v)
    columns = [*values, None]
    matrix = [[agg.confusion.get((r, c), 0) for c in columns] for r in values]
    return {"reference": [str(v) for v in values],
            "predicted": [str(v) if v is not None else "(none)" for v in columns], "matrix": matrix}


def agreement_metric(agg: AttributeAgreement) -> Agreement:
    """One attribute's accuracy with a Wilson 95 % interval, counts and confusion matrix."""
    d = agg.to_dict()
    return Agreement(value=agg.accuracy, n=agg.n, ci95=wilson_interval(agg.correct, agg.n) if agg.n else None,
                     correct=agg.correct, missing=agg.missing, confusion=d["confusion"],
                     confusion_matrix=confusion_matrix(agg))


def seed000_row(agreements: Mapping[str, AttributeAgreement]) -> dict[str, float | None]:
    """The seed-000 table row: column header -> accuracy (None when nothing was scored)."""
    return {header: (agreements[attr].accuracy if attr in agreements else None) for header, attr in SEED000_COLUMNS}
