"""The mask-conditioning stage kinds through ``synthmed run``: ControlNet, segmenter, paired generation,
mask adherence and localisation TSTR on tiny models, skipped when unchanged, shown in the report."""

from __future__ import annotations

import json
import re

import pytest
import torch

from synthmed.data import read_records
from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.runner import run_pipeline
from synthmed.report import build_report
from synthmed.testing.pipelines import write_tiny_ldm

SEGMENTER = {"model": {"resolution": 32, "channels": [8, 16]}, "batch_size": 4}


def mask_stages(ldm) -> list[dict]:
    return [
        {"name": "phantom", "kind": "data.phantom", "out": "data/phantom",
         "settings": {"n": 48, "size": 32, "slices_per_patient": 2}},
        {"name": "caption", "kind": "caption", "out": "data/real", "settings": {"data": "${phantom}"}},
        {"name": "controlnet", "kind": "train.controlnet",
         "settings": {"base": str(ldm), "data": "${caption}", "resolution": 32, "max_steps": 3,
                      "optim": {"batch_size": 2, "lr": 1e-2}, "progress": False, "validation_steps": 2,
                      "tensorboard": False}},
        {"name": "segmenter", "kind": "train.segmenter",
         "settings": {"data": "${caption}", "max_steps": 6, "progress": False, **SEGMENTER}},
        {"name": "pairs", "kind": "generate", "out": "data/pairs",
         "settings": {"model": str(ldm), "controlnet": "${controlnet}", "masks_from_findings": True,
                      "findings_grid": "balanced:${caption}", "num_prompts": 6, "steps": 2, "progress": False}},
        {"name": "mask_adherence", "kind": "evaluate.mask-adherence", "out": "eval/mask_adherence",
         "settings": {"fake": "${pairs}", "segmenter": "${segmenter}", "real": "${caption}", "n_boot": 100}},
        {"name": "tstr", "kind": "evaluate.localization-tstr", "out": "eval/tstr",
         "settings": {"real": "${caption}", "synthetic": "${pairs}", "steps": 4, "n_boot": 100, "progress": False,
                      "conditions": ["trtr", "tstr", "low", "low+synth"], "low_fraction": 0.3, **SEGMENTER}},
    ]


@pytest.fixture(scope="module")
def mask_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mask-kinds")
    cfg = {"name": "mask kinds", "seed": 0, "stages": mask_stages(write_tiny_ldm(root / "ldm"))}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = run_pipeline(load_pipeline_config(data=cfg), root / "run")
        again = run_pipeline(load_pipeline_config(data=cfg), root / "run")
    finally:
        torch.set_num_threads(threads)
    return root / "run", first, again


def test_mask_stage_kinds_run_and_skip_when_unchanged(mask_run):
    run, first, again = mask_run
    assert [s.status for s in first.stages] == ["ran"] * 7
    assert again.skipped == [s.name for s in again.stages]
    pairs = read_records(run / "data/pairs")
    assert len(pairs) == 6 and all(r.mask_file_name and r.requested_findings for r in pairs)
    adherence = json.loads((run / "eval/mask_adherence/mask_adherence.json").read_text())
    assert adherence["n"] == 6 and adherence["reference"]
    tstr = json.loads((run / "eval/tstr/localization_tstr.json").read_text())
    assert list(tstr["conditions"]) == ["TRTR", "TSTR", "lowR", "lowR+S"]
    assert "low-data gain (lowR+S - lowR)" in tstr["comparisons"]


def test_report_shows_mask_adherence_and_tstr(mask_run):
    html = build_report(mask_run[0])
    assert "masks" in re.findall(r'<section id="([a-z]+)"', html)
    for text in ("mask_adherence: 6 images", "tstr: segmenters tested on real patients", "TSTR/TRTR",
                 "localisation TSTR/TRTR pixel AUROC (tstr"):
        assert text in html, text
