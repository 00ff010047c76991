"""The terminal table of a scored reader study."""

from __future__ import annotations

from rich.table import Table

from synthmed.results import StudyResult

COLUMNS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
           ("auroc", "ROC AUC"), ("realism_real", "Realism real"), ("realism_synthetic", "Realism synth."))


def study_table(result: StudyResult) -> Table:
    """One row per reader and a pooled row; Fleiss' kappa and the realism test in the caption."""
    table = Table(title=f"Reader study: {result.n_real} real + {result.n_synthetic} synthetic images "
                        "(positive = synthetic)")
    table.add_column("Reader")
    table.add_column("n", justify="right")
    for _, header in COLUMNS:
        table.add_column(header)
    rows = [*result.readers.items(), ("pooled", result.pooled)]
    for name, scores in rows:
        m = scores.metrics
        table.add_row(name, str(scores.n), *(m[k].text(3 if k.startswith(("acc", "sens", "spec", "auroc")) else 2)
                                             if k in m else "—" for k, _ in COLUMNS))
    notes = []
    pooled = result.pooled.metrics
    if "fleiss_kappa" in pooled:
        notes.append(f"Fleiss' kappa {pooled['fleiss_kappa'].text()}")
    if "realism_mann_whitney_p" in pooled:
        notes.append(f"realism real vs synthetic: Mann-Whitney p = {pooled['realism_mann_whitney_p'].value:.3g}")
    for origin, attrs in result.adherence.items():
        notes += [f"findings on {origin} images, {k}: {a.text()} (n={a.n})" for k, a in attrs.items()]
    table.caption = "; ".join(notes)
    return table
