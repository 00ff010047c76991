"""The offline demo, end to end, in its quick mode."""

import json

import pytest

from synthmed.pipeline.demo import DemoConfig, run_demo


@pytest.mark.slow  # about 1.5 min on a quiet 2-core CPU, 4 min under load
def test_quick_demo_runs_every_stage(tmp_path):
    summary = run_demo(DemoConfig(out=tmp_path / "run", quick=True, n_images=48, n_generated=8))
    run = tmp_path / "run"
    for path in ("data/real/metadata.jsonl", "data/synthetic/metadata.jsonl", "model/model_index.json",
                 "judge", "eval/adherence.json", "eval/fidelity.json", "summary.md"):
        assert (run / path).exists(), path
    # At 64 px a 10 mm tumour can fall under the captioner's 4-pixel minimum.
    assert summary["captioner_accuracy"]["tumor_present"]["accuracy"] >= 0.95
    assert set(summary["timings_s"]) >= {"phantom", "caption", "judge", "train_ldm", "generate", "evaluate"}
    rows = [json.loads(line) for line in (run / "data/synthetic/metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["requested_findings"] is not None for r in rows)
    assert json.loads((run / "summary.json").read_text())["fidelity"]["features"] == "efficientnet-lite0"
