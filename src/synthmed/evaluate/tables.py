"""Rich tables of per-attribute agreement in seed 000's layout (scoring: :mod:`synthmed.findings.agreement`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from synthmed.findings.agreement import SEED000_COLUMNS, AttributeAgreement


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
