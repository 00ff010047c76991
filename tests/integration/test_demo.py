"""The offline demo (the pipeline runner with its built-in config), end to end, in its quick mode."""

import json
import re

import pytest

from synthmed.pipeline.demo import DemoConfig, run_demo
from synthmed.report import write_report


@pytest.mark.slow  # about 1.5 min on a quiet 2-core CPU, 4 min under load
def test_quick_demo_runs_every_stage(tmp_path):
    summary = run_demo(DemoConfig(out=tmp_path / "run", quick=True, n_images=48, n_generated=8))
    run = tmp_path / "run"
    for path in ("data/real/metadata.jsonl", "data/synthetic/metadata.jsonl", "model/model_index.json",
                 "eval/adherence/adherence.json", "eval/fidelity/fidelity.json", "summary.md", "run.json"):
        assert (run / path).exists(), path
    # At 64 px a 10 mm tumour can fall under the captioner's 4-pixel minimum.
    assert summary["captioner_accuracy"]["tumor_present"]["accuracy"] >= 0.95
    assert set(summary["timings_s"]) >= {"phantom", "caption", "train_ldm", "generate", "adherence", "fidelity"}
    # Adherence is judged by the shipped judge, whose own real-test accuracy is reported with it.
    assert summary["judge_real_test_accuracy"]["tumor_present"] >= 0.95
    assert set(summary["stages"].values()) == {"ran"}
    rows = [json.loads(line) for line in (run / "data/synthetic/metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["requested_findings"] is not None for r in rows)
    assert json.loads((run / "summary.json").read_text())["fidelity"]["features"] == "efficientnet-lite0"
    presence = summary["adherence"]["tumor_present"]
    assert presence["n"] == 8 and presence["ci95"][0] <= presence["value"] <= presence["ci95"][1]
    assert summary["ldm_steps"] == {"autoencoder": 20, "unet": 30}  # the quick demo's fixed steps
    md = (run / "summary.md").read_text()
    assert not re.search(r"\d\.\d{5,}", md), "summary.md prints numbers with more than 3 decimals"

    # A rerun with the same options redoes nothing.
    again = run_demo(DemoConfig(out=run, quick=True, n_images=48, n_generated=8))
    assert set(again["stages"].values()) == {"skipped"}

    html = write_report(run).read_text()
    for section in ("summary", "grids", "training", "fidelity", "adherence", "captions", "provenance"):
        assert f'<section id="{section}"' in html, section
    assert "train_ldm: training loss" in html  # the LDM's tensorboard losses are plotted
