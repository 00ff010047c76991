"""synthmed explain: prompts, reply parsing, and scoring per mode through a loopback chat server."""

from __future__ import annotations

import json

import pytest

from synthmed.errors import ConfigError
from synthmed.explain import ExplainConfig, build_prompt, explain_dataset, parse_reply
from synthmed.localize.predict import LocalizePredictConfig, predict_localization
from synthmed.testing.chat_server import ChatServer, Reply


def test_prompts_differ_by_mode_and_need_localisation():
    zs = build_prompt("zero-shot")
    ins = build_prompt("instruction", "A small round tumour in the left frontal lobe.")
    cot = build_prompt("chain-of-thought", "A small round tumour in the left frontal lobe.")
    assert not zs.uses_overlay and ins.uses_overlay and cot.uses_overlay
    assert "red region marks the tumour" in ins.text and "left frontal lobe" in ins.text
    assert "step by step" in cot.text and "red region" not in zs.text
    with pytest.raises(ValueError, match="needs the localiser"):
        build_prompt("instruction")
    with pytest.raises(ValueError, match="unknown explanation mode"):
        build_prompt("few-shot")


def test_parse_reply_validates_findings_and_keeps_the_explanation():
    good = parse_reply('Reasoning... {"findings": {"tumor_present": true, "hemisphere": "left"}, '
                       '"explanation": "A bright mass."}')
    assert good.findings.hemisphere == "left" and good.explanation == "A bright mass." and good.error is None
    assert parse_reply("I think there is a tumour.").findings is None
    bad = parse_reply('{"findings": {"tumor_present": true, "hemisphere": "middle"}, "explanation": "x"}')
    assert bad.findings is None and "invalid findings" in bad.error and bad.explanation == "x"


def test_explain_scores_each_mode_against_ground_truth(trained_localizer, lesion_dir, tmp_path):
    pred = tmp_path / "pred"
    predict_localization(LocalizePredictConfig(model=trained_localizer, data=lesion_dir, out=pred, split="test",
                                               progress=False))
    truth = {}
    for line in (lesion_dir / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        truth[row["file_name"]] = row["findings"]

    def answer(req):  # a VLM that gets it right only when shown the red region
        text = req.text()
        if "red region marks the tumour" not in text:
            return Reply("There may be something. " + json.dumps({"findings": {"tumor_present": True,
                                                                             "hemisphere": "right"}}))
        return Reply(json.dumps({"findings": {"tumor_present": True, "hemisphere": "left"},
                                 "explanation": "The red region is a bright round mass."}))

    out = tmp_path / "explanation.json"
    with ChatServer(answer) as srv:
        report = explain_dataset(ExplainConfig(data=lesion_dir, pred=pred, out=out, vlm="api:test-vlm",
                                               base_url=srv.base_url, split="test", progress=False))
    saved = json.loads(out.read_text())
    assert saved["prompt_version"] == "explain-v1" and saved["model"] == "api:test-vlm"
    assert saved["n_images"] == 6 and len(srv.requests) == 6 * 3
    zs, ins = report.scores["zero-shot"], report.scores["instruction"]
    assert zs.parsed_fraction == 1.0
    n_left = sum(truth[i["file_name"]].get("hemisphere") == "left" for i in saved["items"])
    n_tumour = sum(truth[i["file_name"]]["tumor_present"] for i in saved["items"])
    assert ins.attributes["hemisphere"].correct == n_left
    assert zs.attributes["hemisphere"].correct == n_tumour - n_left
    assert saved["items"][0]["results"]["instruction"]["explanation"].startswith("The red region")


def test_explain_option_errors(lesion_dir, tmp_path):
    with pytest.raises(ConfigError, match="need --pred"):
        explain_dataset(ExplainConfig(data=lesion_dir, out=tmp_path / "e.json", vlm="api:m"))
    with pytest.raises(ConfigError, match="unknown VLM back end"):
        explain_dataset(ExplainConfig(data=lesion_dir, out=tmp_path / "e.json", vlm="gpt", modes=["zero-shot"]))
