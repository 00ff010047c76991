"""``synthmed run``: stages skip when unchanged, rerun (with their dependants) when changed, resume after a crash."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict

from synthmed.errors import ConfigError
from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.registry import StageDef, StageNotAvailable, get_stage, register
from synthmed.pipeline.runner import check_pipeline, read_stage_record, run_pipeline


class FlakyConfig(BaseModel):
    """A test stage that fails while a flag file exists (a crash a user fixes and reruns)."""

    model_config = ConfigDict(extra="forbid")
    data: str
    out: str
    fail_flag: str
    resume: bool = False


def run_flaky(cfg: FlakyConfig, ctx) -> dict:
    from pathlib import Path

    from synthmed.data import read_records

    if Path(cfg.fail_flag).exists():
        raise RuntimeError("simulated crash")
    rows = read_records(cfg.data)
    (ctx.out / "count.txt").write_text(str(len(rows)))
    return {"rows": len(rows), "resumed": cfg.resume}


register(StageDef("test.flaky", "a stage that fails on demand", f"{__name__}:FlakyConfig", f"{__name__}:run_flaky",
                  adapter=True, resume_field="resume"), replace=True)
register(StageDef("test.missing", "a stage whose code is not installed", "synthmed.not_there:Config",
                  "synthmed.not_there:run"), replace=True)


def _statuses(result):
    return {s.name: s.status for s in result.stages}


def test_rerun_skips_unchanged_and_redoes_changed_stages_with_their_dependants(tmp_path, tiny_study):
    run = tmp_path / "run"
    data = tiny_study()
    first = run_pipeline(load_pipeline_config(data=data), run)
    assert _statuses(first) == {"phantom": "ran", "caption": "ran", "paraphrase": "ran"}
    meta_mtime = (run / "data/phantom/metadata.jsonl").stat().st_mtime_ns

    again = run_pipeline(load_pipeline_config(data=data), run)
    assert _statuses(again) == {"phantom": "skipped", "caption": "skipped", "paraphrase": "skipped"}
    assert (run / "data/phantom/metadata.jsonl").stat().st_mtime_ns == meta_mtime

    data["stages"][1]["settings"]["batch_size"] = 4  # a caption setting changed: caption and paraphrase rerun
    changed = run_pipeline(load_pipeline_config(data=data), run)
    assert _statuses(changed) == {"phantom": "skipped", "caption": "ran", "paraphrase": "ran"}
    assert (run / "data/phantom/metadata.jsonl").stat().st_mtime_ns == meta_mtime

    forced = run_pipeline(load_pipeline_config(data=data), run, force=["caption"])
    assert _statuses(forced) == {"phantom": "skipped", "caption": "ran", "paraphrase": "ran"}

    record = json.loads((run / "run.json").read_text())
    assert set(record) >= {"config", "seeds", "data_hashes", "timings_s", "provenance", "stages"}
    assert record["seeds"]["phantom"] == 0 and record["provenance"]["packages"]["torch"]
    assert set(record["data_hashes"]) == {"phantom", "caption", "paraphrase"}
    assert record["stages"]["caption"]["summary"]["accuracy_vs_original"]["tumor_present"]["n"] == 16
    # the caption stage worked on a copy: the phantom's own rows are still uncaptioned by the mask captioner
    first_row = json.loads((run / "data/phantom/metadata.jsonl").read_text().splitlines()[0])
    assert first_row.get("captioner") != "mask"


def test_a_crashed_stage_resumes_and_only_it_reruns(tmp_path, tiny_study):
    run, flag = tmp_path / "run", tmp_path / "fail"
    data = tiny_study()
    data["stages"].append({"name": "flaky", "kind": "test.flaky",
                           "settings": {"data": "${caption}", "fail_flag": str(flag)}})
    flag.write_text("1")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pipeline(load_pipeline_config(data=data), run)
    assert read_stage_record(run, "flaky")["status"] == "failed"
    flag.unlink()
    result = run_pipeline(load_pipeline_config(data=data), run)
    assert _statuses(result) == {"phantom": "skipped", "caption": "skipped", "paraphrase": "skipped",
                                 "flaky": "resumed"}
    assert result.outcome("flaky").summary == {"rows": 16, "resumed": True}
    assert read_stage_record(run, "flaky")["attempts"] == 2


def test_changed_external_input_reruns_the_stage(tmp_path, monkeypatch, tiny_study):
    monkeypatch.chdir(tmp_path)
    run_pipeline(load_pipeline_config(data=tiny_study()), tmp_path / "src")
    data = {"stages": [{"name": "copy", "kind": "caption", "settings": {"data": "src/data/real"}}]}
    assert run_pipeline(load_pipeline_config(data=data), tmp_path / "run").ran == ["copy"]
    assert run_pipeline(load_pipeline_config(data=data), tmp_path / "run").skipped == ["copy"]
    meta = tmp_path / "src/data/real/metadata.jsonl"
    meta.write_text(meta.read_text().replace('"patient_id": "P00001"', '"patient_id": "P00099"', 1))
    assert run_pipeline(load_pipeline_config(data=data), tmp_path / "run").ran == ["copy"]


def test_unavailable_and_unknown_stages_are_refused_clearly(tmp_path):
    missing = load_pipeline_config(data={"stages": [{"name": "m", "kind": "test.missing"}]})
    with pytest.raises(ConfigError, match="registered but not available.*synthmed.not_there"):
        check_pipeline(missing, tmp_path)
    with pytest.raises(StageNotAvailable):
        get_stage("test.missing").function()
    disabled = load_pipeline_config(data={"stages": [{"name": "m", "kind": "test.missing", "enabled": False}]})
    assert "disabled" in check_pipeline(disabled, tmp_path).lines[0]
    unknown = load_pipeline_config(data={"stages": [{"name": "m", "kind": "train.gan"}]})
    with pytest.raises(ConfigError, match="unknown stage kind 'train.gan'; known kinds: caption"):
        check_pipeline(unknown, tmp_path)


def test_check_validates_settings_against_the_stage_config(tmp_path):
    bad = load_pipeline_config(data={"stages": [
        {"name": "real", "kind": "data.phantom", "settings": {"n": 0}},
        {"name": "ldm", "kind": "train.ldm", "settings": {"data": "${real}", "resolutoin": 64}},
        {"name": "gen", "kind": "generate", "settings": {"model": "${ldm}", "out": "x", "prompts": ["a"]}},
        {"name": "auto", "kind": "train.judge", "settings": {"data": "${real}", "minutes": "auto"}}]})
    with pytest.raises(ConfigError) as err:
        check_pipeline(bad, tmp_path)
    text = str(err.value)
    assert "stage 'real' (data.phantom): field 'n'" in text
    assert "stage 'ldm' (train.ldm): field 'resolutoin'" in text
    assert "setting 'out' is chosen by the runner" in text
    assert "'minutes: auto' is only supported" in text


def test_auto_minutes_gets_the_budget_left_after_the_reserves():
    from synthmed.pipeline.runner import _auto_minutes

    cfg = load_pipeline_config(data={"minutes": 15, "min_auto_minutes": 2, "stages": [
        {"name": "a", "kind": "train.ldm"}, {"name": "b", "kind": "generate", "reserve_minutes": 1.5},
        {"name": "c", "kind": "generate", "reserve_minutes": 1.0, "enabled": False}]})
    assert _auto_minutes(cfg, 0, 60.0) == pytest.approx(15 - 1 - 1.5)
    assert _auto_minutes(cfg, 0, 3600.0) == 2


def test_list_inputs_outside_the_run_are_hashed_one_by_one(tmp_path, monkeypatch):
    """``loras: [dir, ${stage}]``: an external LoRA folder enters the key by content, a stage by its token."""
    from synthmed.pipeline.hashing import HashCache
    from synthmed.pipeline.runner import _input_hashes

    monkeypatch.chdir(tmp_path)
    (tmp_path / "lora").mkdir()
    weights = tmp_path / "lora/pytorch_lora_weights.safetensors"
    weights.write_bytes(b"one")
    spec = load_pipeline_config(data={"stages": [{"name": "g", "kind": "generate"}]}).stages[0]
    sdef = get_stage("generate")
    settings = {"model": "org/model", "loras": ["lora", "${trained}"], "embeddings": []}
    before = _input_hashes(spec, sdef, settings, HashCache(None))
    assert set(before) == {"model", "loras[0]"} and before["model"] is None and before["loras[0]"]  # hub id: text
    weights.write_bytes(b"two")
    assert _input_hashes(spec, sdef, settings, HashCache(None))["loras[0]"] != before["loras[0]"]
    notes = check_pipeline(load_pipeline_config(data={"stages": [
        {"name": "g", "kind": "generate", "settings": {"model": "org/model", "prompts": ["a"],
                                                       "loras": ["./missing-lora"]}}]}), tmp_path / "run").notes
    assert notes == ["stage 'g': loras[0]='./missing-lora' does not exist here (needed at run time)"]


def test_model_references_are_hashed_by_what_they_name(tmp_path, monkeypatch):
    """``hf:<folder>`` captioners enter the key by the folder's content; ``builtin:`` models by the packaged weights."""
    from synthmed.judge.io import resolve_judge
    from synthmed.pipeline.hashing import HashCache, hash_path
    from synthmed.pipeline.runner import _input_hashes
    from synthmed.utils.builtin import resolve_builtin

    monkeypatch.chdir(tmp_path)
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm/model.safetensors").write_bytes(b"one")
    spec = load_pipeline_config(data={"stages": [{"name": "c", "kind": "caption"}]}).stages[0]
    settings = {"data": "${phantom}", "captioner": "hf:vlm"}
    before = _input_hashes(spec, get_stage("caption"), settings, HashCache(None))
    assert before["captioner"]
    (tmp_path / "vlm/model.safetensors").write_bytes(b"two")
    assert _input_hashes(spec, get_stage("caption"), settings, HashCache(None))["captioner"] != before["captioner"]
    for text in ("mask", "api:gpt-4o", "hf:org/some-vlm"):          # no local folder: the text is the identity
        assert _input_hashes(spec, get_stage("caption"), {"captioner": text}, HashCache(None))["captioner"] is None

    spec = load_pipeline_config(data={"stages": [{"name": "a", "kind": "evaluate.adherence"}]}).stages[0]
    judged = _input_hashes(spec, get_stage("evaluate.adherence"), {"judge": "builtin:phantom-128-robust"},
                           HashCache(None))
    assert judged["judge"] == hash_path(resolve_judge("builtin:phantom-128-robust"))
    assert _input_hashes(spec, get_stage("evaluate.adherence"), {"judge": "builtin:nope"}, HashCache(None)) == \
        {"judge": None}
    spec = load_pipeline_config(data={"stages": [{"name": "t", "kind": "train.ldm"}]}).stages[0]
    first_stage = _input_hashes(spec, get_stage("train.ldm"), {"pretrained_autoencoder": "builtin:phantom-vae-128"},
                                HashCache(None))
    assert first_stage["pretrained_autoencoder"] == hash_path(resolve_builtin("builtin:phantom-vae-128"))
    notes = check_pipeline(load_pipeline_config(data={"stages": [
        {"name": "c", "kind": "caption", "settings": {"data": "./data", "captioner": "hf:./missing-vlm"}}]}),
        tmp_path / "run").notes
    assert "stage 'c': captioner='hf:./missing-vlm' does not exist here (needed at run time)" in notes
