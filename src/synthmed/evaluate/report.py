"""Shared reporting of per-attribute agreement: the seed-000 table layout, JSON and rich tables.

Seed 000 reports caption accuracy as one row per model with the columns
Tumor | Loc. | Size | Shape | Intensity | Orient. Here "Loc." is the joint location — the
hemisphere *and* the lobe region both right — and "Size" the size category; hemisphere and
lobe are also reported alone, with every other attribute, in the full breakdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from synthmed.classify.metrics import wilson_interval
from synthmed.evaluate.attributes import AttributeAgreement, attribute_agreement
from synthmed.findings.schema import (
    BRAIN_ATTRIBUTE_VALUES,
    HEMISPHERES,
    LOBES,
    BrainMRIFindings,
)
from synthmed.results import Agreement

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


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def agreement_table(rows: Mapping[str, Mapping[str, AttributeAgreement]], *, title: str, first: str = "Model",
                    extra: Sequence[tuple[str, str]] = (("Hemisphere", "hemisphere"), ("Lobe", "lobe"))) -> Table:
    """A rich table in seed 000's layout, one row per model/captioner, plus ``extra`` columns and n."""
    table = Table(title=title)
    table.add_column(first)
    for header, _ in (*SEED000_COLUMNS, *extra):
        table.add_column(header, justify="right")
    table.add_column("n", justify="right")
    for name, aggs in rows.items():
        cells = [_fmt(aggs[a].accuracy if a in aggs else None) for _, a in (*SEED000_COLUMNS, *extra)]
        n = aggs["tumor_present"].n if "tumor_present" in aggs else 0
        table.add_row(name, *cells, str(n))
    return table
