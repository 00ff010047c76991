"""``synthmed report``: one self-contained HTML page of a run."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.errors import DataError
from synthmed.report import build_report, svg, write_report


def test_report_has_the_sections_whose_data_exist_and_nothing_external(full_run, tmp_path):
    html = build_report(full_run)
    ids = re.findall(r'<section id="([a-z]+)"', html)
    assert ids == ["summary", "grids", "fidelity", "privacy", "captions", "provenance"]
    assert "adherence" not in ids and "downstream" not in ids  # no data, no section
    assert html.index('id="summary"') < html.index('id="grids"') < html.index('id="provenance"')
    # self-contained: every image is embedded, nothing is fetched
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) >= 8 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="https?://', html) and "<script" not in html
    assert "<svg" in html and "Precision vs recall" in html
    assert "Fréchet distance vs sampling steps" in html  # two fidelity stages on 2- and 4-step generations
    assert "What was trained on what" in html and "git revision" in html
    assert "Real (paraphrase) vs generated (generate), by tumour location" in html


def test_cli_writes_the_report(full_run, tmp_path):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(full_run), "--out", str(out), "--max-images", "2"])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_a_hostile_run_directory_name_renders_as_text(full_run, tmp_path, monkeypatch):
    import shutil

    name = "<svg onload=alert(4)>"
    shutil.copytree(full_run, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    html = build_report(name)  # relative: the provenance table's first cell starts with '<'
    assert "<svg onload" not in html and "&lt;svg onload=alert(4)&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_table_escapes_every_string_it_was_not_given_as_markup():
    from synthmed.report.html import cards, table, trusted, with_ci

    html = table(["a", "b"], [["<b>bold</b>", trusted("<i>ok</i>")], [with_ci(0.5, [0.4, 0.6]), 3]])
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<i>ok</i>" in html and "<b>" not in html
    assert '<td class="num">0.500 <span class="muted">[0.400, 0.600]</span></td>' in html
    assert "&lt;img" in cards([("x", "<img src=x onerror=alert(1)>")])


def test_not_a_run_directory(tmp_path):
    with pytest.raises(DataError, match="run.json"):
        write_report(tmp_path)


def test_svg_charts_are_well_formed_xml():
    import xml.etree.ElementTree as ET

    charts = [svg.bar_chart([("a", 0.5, (0.4, 0.6)), ("b", 0.9, None)], title="t", ymax=1.0, reference=0.5),
              svg.grouped_bars(["auroc", "acc"], {"trtr": [(0.8, (0.7, 0.9)), (0.7, None)],
                                                  "tstr": [(0.6, None), (float("nan"), None)]}, title="g"),
              svg.line_chart({"loss": [(1, 2.0), (2, 1.0), (3, 0.5)]}, title="l", logy=True),
              svg.heatmap([[3, 1, 0], [0, 2, 1]], ["left", "right"], ["left", "right", "(none)"], title="h"),
              svg.scatter([("fid", 0.3, 0.7)], title="s", xlabel="recall", ylabel="precision")]
    for chart in charts:
        root = ET.fromstring(chart)
        assert root.tag.endswith("svg") and root.find("{http://www.w3.org/2000/svg}title") is not None
    assert charts[3].count("<rect") == 6


def test_svg_charts_stay_readable_at_the_edges():
    import xml.etree.ElementTree as ET

    one = svg.line_chart({"loss": [(4, 0.8)]}, title="one point", logy=True)
    circle = ET.fromstring(one).find(".//{http://www.w3.org/2000/svg}circle")
    assert circle is not None and 200 < float(circle.get("cx")) < 400  # centred, not on the axis
    labels = re.findall(r'text-anchor="end"[^>]*>([^<]+)</text>', one)
    assert labels == ["0.5", "1", "2"]  # a decade around 0.8, labelled in the data's units (not log10 values)
    assert [round(10**t, 6) for t in svg._log_ticks(-0.2, 0.1)] == [0.8, 1.0, 1.2]
    epochs = svg.line_chart({"loss": [(1, 2.0), (2, 1.0)]}, title="two epochs")
    assert re.findall(r'text-anchor="middle"[^>]*>([^<]+)</text>', epochs)[1:] == ["1", "2"]  # no 1.2, 1.4...
    long = ["tumor_present", "size_category", "hemisphere", "orientation", "intensity", "location", "edema", "lobe"]
    bars = svg.grouped_bars(long, {"a": [(0.5, None)] * len(long)}, title="t", width=560)
    assert bars.count("rotate(30)") == len(long)  # long labels side by side would overlap
    short = svg.grouped_bars(["auroc", "acc"], {"a": [(0.5, None)] * 2}, title="t")
    assert "rotate(30)" not in short
    heat = svg.heatmap([[1, 0], [0, 1]], ["no", "yes"], ["no", "yes"], title="h")
    first_cell = float(re.search(r'<rect x="([\d.]+)"', heat).group(1))
    assert first_cell >= len("requested ↓") * 6  # the rows' title does not run into the first column
