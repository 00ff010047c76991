"""A reader study as a stage of `synthmed run`, and its section of the report."""

from __future__ import annotations

import html as html_module
import re

import pytest

from synthmed.errors import ConfigError
from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.runner import run_pipeline
from synthmed.report import build_report
from synthmed.study import score_study
from synthmed.study.layout import read_key, read_settings
from synthmed.study.store import AnswerStore


def _config(n: int) -> dict:
    return {"name": "study-run", "seed": 3, "stages": [
        {"name": "real", "kind": "data.phantom", "settings": {"n": 12, "size": 32, "slices_per_patient": 2}},
        {"name": "fake", "kind": "data.phantom", "settings": {"n": 12, "size": 32, "slices_per_patient": 2,
                                                             "seed": 9}},
        {"name": "readers", "kind": "study", "settings": {"real": "${real}", "fake": "${fake}", "n_real": n,
                                                         "questions": ["realism", "findings"]}},
    ]}


def test_study_stage_then_scores_in_the_report(tmp_path):
    run = tmp_path / "run"
    result = run_pipeline(load_pipeline_config(data=_config(4)), run)
    assert [s.status for s in result.stages] == ["ran"] * 3
    study = run / "readers"
    settings = read_settings(study)
    assert len(settings.items) == 8 and settings.seed == 3  # the pipeline's seed
    html = build_report(run)
    assert 'id="study"' in html and "0 answers so far" in html and "synthmed study score" in html

    key = read_key(study)
    store = AnswerStore(study)
    (ann,) = store.add_readers(["ann"], settings)
    for item in ann.order:  # a perfect reader
        synthetic = key.items[item].origin == "synthetic"
        store.add_answer(ann.token, item, {"confidence": 6 if synthetic else 1, "realism": 2 if synthetic else 5,
                                           "tumor_present": False})
    score_study(study, n_boot=50)
    html = build_report(run)
    section = html[html.index('id="study"'):html.index('id="provenance"')]
    assert "1 readers, 4 real + 4 synthetic images" in section
    assert re.search(r"ROC AUC.*?1\.000", section, re.S) and "ROC of calling an image synthetic" in section
    assert "readers' findings on synthetic images" in html_module.unescape(section)
    assert "readers: ROC AUC (readers, 1 readers)" in html  # the summary's headline

    # changed settings re-create the study, but never over readers' answers
    with pytest.raises(ConfigError, match="answers.sqlite"):
        run_pipeline(load_pipeline_config(data=_config(3)), run)
    assert read_settings(study).items == settings.items and len(AnswerStore(study).answers()) == 8
