"""``synthmed report RUN_DIR``: one self-contained HTML page of a run (images embedded, no network).

The summary comes first (what was trained on what, headline metrics with intervals), then
real-vs-generated grids per finding, training curves, fidelity, adherence, downstream,
mask-conditioned generation (mask adherence, localisation TSTR), privacy, captioning,
localisation, explanation and reader-study sections (each only when the run has its data),
and the provenance block last. Charts are hand-written SVG, so the report needs no
plotting library and no script.
"""

from __future__ import annotations

import logging
from pathlib import Path

import synthmed.report.sections as S
from synthmed.report.html import Page, cards
from synthmed.report.masks import mask_conditioning
from synthmed.report.rundata import RunData

logger = logging.getLogger(__name__)

#: Section ids in page order (the browser test checks for them).
SECTION_IDS = ("summary", "grids", "training", "fidelity", "adherence", "downstream", "masks", "privacy", "captions",
               "localisation", "explanations", "study", "provenance")


def build_report(run_dir: str | Path, *, max_images: int = 6) -> str:
    """The report of ``run_dir`` as one HTML string.

    Raises:
        DataError: ``run_dir`` is not a run directory.
    """
    run = RunData(run_dir)
    page = Page(title=f"synthmed report: {run.name}", subtitle=run.record.get("description") or "")
    page.add("summary", "Summary", [cards(S.headline(run)), S.trained_on_what(run), "<h3>Stages</h3>",
                                    S.stage_table(run)])
    page.add("grids", "Real vs generated, per finding", S.grids(run, per_side=max_images))
    page.add("training", "Training", S.training(run))
    page.add("fidelity", "Fidelity", S.fidelity(run))
    page.add("adherence", "Prompt adherence", S.adherence(run))
    page.add("downstream", "Downstream classifiers (TRTR vs TSTR)", S.downstream(run))
    page.add("masks", "Mask-conditioned generation", mask_conditioning(run, max_images=max_images))
    page.add("privacy", "Privacy: memorisation audit", S.privacy(run))
    page.add("captions", "Captioning", S.captions(run))
    page.add("localisation", "Localisation", S.localisation(run))
    page.add("explanations", "Explanations", S.explanations(run))
    page.add("study", "Reader study: real or synthetic?", S.reader_study(run))
    page.add("provenance", "Provenance", S.provenance_block(run))
    return page.render()


def write_report(run_dir: str | Path, out: str | Path | None = None, *, max_images: int = 6) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``) and return its path."""
    html = build_report(run_dir, max_images=max_images)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    logger.info("report: %s (%.0f kB)", path, path.stat().st_size / 1024)
    return path


__all__ = ["SECTION_IDS", "build_report", "write_report"]
