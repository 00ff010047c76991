"""The Runs tab's work: a run directory -> its headline metrics, its real-vs-generated grids, its report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunOverview:
    """What the Runs tab shows of one run."""

    headline_markdown: str
    grids_html: str
    report: Path


def run_overview(run_dir: str | Path) -> RunOverview:
    """Headline metrics (with intervals), the report's per-finding grids, and the report (written if missing).

    Raises:
        DataError: not a run directory.
    """
    import re

    import synthmed.report.sections as S
    from synthmed.report import write_report
    from synthmed.report.rundata import RunData

    run = RunData(run_dir)
    rows = S.headline(run)

    def plain(html: str) -> str:
        return re.sub(r"<[^>]+>", "", str(html)).replace("|", "\\|")

    lines = [f"### {run.name}", "", "| metric | value [95 % interval] |", "|---|---|"]
    lines += [f"| {plain(label)} | {plain(value)} |" for label, value in rows] or ["| (no metrics yet) | |"]
    report = Path(run_dir) / "report.html"
    if not report.is_file():
        report = write_report(run_dir)
    return RunOverview("\n".join(lines), "".join(S.grids(run)), report)
