"""The report renders in a real browser (headless Chromium): sections and images are there."""

from __future__ import annotations

import re

import pytest

from synthmed.report import write_report
from synthmed.testing.browser import CHROMIUM, SKIP_REASON
from synthmed.testing.browser import chromium as _chromium


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_report_renders_in_headless_chromium(full_run, tmp_path):
    report = write_report(full_run, tmp_path / "report.html")
    dom = _chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for section in ("summary", "grids", "fidelity", "privacy", "provenance"):
        assert f'id="{section}"' in html, section
    assert len(re.findall(r"<img ", html)) >= 8 and html.count("<svg") >= 2
    shot = tmp_path / "report.png"
    res = _chromium("--window-size=1280,2000", f"--screenshot={shot}", report.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (1280, 2000)
    lo, hi = img.getextrema()
    assert hi - lo > 100  # something was drawn: not a blank page
