"""Every stage kind runs through ``synthmed run`` on tiny real models, and the report shows what it made.

The default suite runs a cheap study (judge, LoRA, textual inversion, generation with the
LoRA and with the embeddings, adherence, downstream, caption evaluation); the slow study adds
Kandinsky 2.2 (trained and sampled), the localiser and VLM explanations through a loopback
chat server, and renders the report in headless Chromium.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from synthmed.data import read_records
from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.runner import run_pipeline
from synthmed.report import build_report, write_report

#: Fine-tuning settings of a seconds-long run on 32 px images (a loss logged every step).
FT = {"resolution": 32, "max_steps": 4, "log_every": 1, "optim": {"batch_size": 2, "lr": 1e-2},
      "progress": False, "validation_steps": 2, "checkpoint_every": 2}


def write_class_folders(root: Path, per_class: int = 2) -> Path:
    """``Training/<class>/*.png`` in the Kaggle brain-tumour layout (random 24 px gray images)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("glioma", "notumor"):
        (root / "Training" / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(root / "Training" / cls / f"{i}.png")
    return root


def cheap_stages(sd: Path, folders: Path) -> list[dict]:
    """An imported folder; phantom -> captions -> judge, LoRA, textual inversion -> generation with them ->
    adherence, downstream, caption accuracy."""
    return [
        {"name": "imported", "kind": "data.import", "settings": {"format": "folder", "src": str(folders), "size": 32}},
        {"name": "phantom", "kind": "data.phantom", "out": "data/phantom",
         "settings": {"n": 32, "size": 32, "slices_per_patient": 2}},
        {"name": "caption", "kind": "caption", "out": "data/real", "settings": {"data": "${phantom}"}},
        {"name": "judge", "kind": "train.judge",
         "settings": {"data": "${caption}", "preset": "quick", "epochs": 2, "image_size": 32}},
        {"name": "lora", "kind": "train.lora", "settings": {"base": str(sd), "data": "${caption}", "lora": {"rank": 4},
                                                            **FT}},
        {"name": "ti", "kind": "train.textual-inversion",
         "settings": {"base": str(sd), "data": "${caption}", **FT,
                      "concepts": [{"token": "<tumour>", "init_word": "tumour", "num_vectors": 2, "label": "tumor"}]}},
        {"name": "gen_ti", "kind": "generate",
         "settings": {"model": str(sd), "embeddings": ["${ti}"], "prompts": ["a medical image of <tumour>"],
                      "n_per_prompt": 2, "steps": 2, "progress": False}},
        {"name": "generate", "kind": "generate", "out": "data/synthetic",
         "settings": {"model": str(sd), "loras": ["${lora}"], "findings_grid": "balanced:${caption}",
                      "num_prompts": 8, "steps": 2, "batch_size": 8, "progress": False}},
        {"name": "adherence", "kind": "evaluate.adherence", "out": "eval/adherence",
         "settings": {"fake": "${generate}", "judge": "${judge}"}},
        {"name": "downstream", "kind": "evaluate.downstream", "out": "eval/downstream",
         "settings": {"real": "${caption}", "synthetic": "${generate}", "preset": "quick", "epochs": 1, "seeds": [0],
                      "conditions": ["trtr", "tstr"], "bootstrap": 20}},
        {"name": "captions", "kind": "evaluate.captions", "out": "eval/captions",
         "settings": {"pred": "${caption}", "ref": "${phantom}"}},
    ]


def slow_stages(sd: Path, prior: Path, decoder: Path, base_url: str) -> list[dict]:
    """Kandinsky 2.2 (trained and sampled), the localiser and explanations, on the cheap study's captions."""
    from synthmed.testing.localize import TINY_TRAIN

    return [
        {"name": "kandinsky", "kind": "train.kandinsky",
         "settings": {"prior": str(prior), "decoder": str(decoder), "data": "${caption}", **FT,
                      "prior_lora_spec": {"rank": 4}, "decoder_lora_spec": {"rank": 4}}},
        {"name": "gen_kandinsky", "kind": "generate",
         "settings": {"model": str(decoder), "prior": str(prior),
                      "loras": ["${kandinsky}/stage2-prior", "${kandinsky}/stage3-decoder"],
                      "findings_grid": "balanced:${caption}", "num_prompts": 4, "steps": 2, "height": 32, "width": 32,
                      "progress": False}},
        {"name": "localizer", "kind": "localize.train", "settings": {"data": "${caption}", **TINY_TRAIN}},
        {"name": "localized", "kind": "localize.predict",
         "settings": {"model": "${localizer}", "data": "${caption}", "split": "test", "progress": False}},
        {"name": "explained", "kind": "explain",
         "settings": {"data": "${caption}", "pred": "${localized}", "vlm": "api:test-vlm", "base_url": base_url,
                      "split": "test", "limit": 3, "progress": False}},
    ]


def _study(stages: list[dict]) -> dict:
    return {"name": "stage kinds", "description": "every stage kind on tiny models", "seed": 0, "stages": stages}


def _run_twice(cfg: dict, run_dir: Path):
    """Run ``cfg`` and rerun it unchanged; returns both results."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = run_pipeline(load_pipeline_config(data=cfg), run_dir)
        again = run_pipeline(load_pipeline_config(data=cfg), run_dir)
    finally:
        torch.set_num_threads(threads)
    return first, again


@pytest.fixture(scope="module")
def cheap_run(tmp_path_factory, tiny_sd):
    root = tmp_path_factory.mktemp("kinds")
    cfg = _study(cheap_stages(tiny_sd, write_class_folders(root / "folders")))
    run_dir = root / "run"
    first, again = _run_twice(cfg, run_dir)
    return run_dir, first, again


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _check_cheap_outputs(run: Path) -> None:
    """The outputs of :func:`cheap_stages` exist and hold sane numbers."""
    imported = read_records(run / "imported")
    assert sorted(r.label for r in imported) == ["glioma", "glioma", "notumor", "notumor"]
    assert _json(run / "run.json")["data_hashes"]["imported.src"]  # the folder outside the run, by content
    judge_acc = _json(run / "judge/real_test_metrics.json")
    assert (run / "judge/model.safetensors").is_file() and judge_acc
    assert (run / "lora/pytorch_lora_weights.safetensors").is_file()
    assert sorted(p.name for p in (run / "lora/validation").glob("*.png")) == ["step-0000004.png"]
    assert _json(run / "lora/synthmed.json")["result"]["steps"] == 4
    # generation used the LoRA the previous stage trained (a ${ref} inside a list)
    identity = _json(run / "data/synthetic/generate.json")["identity"]
    assert [Path(p) for p in identity["loras"]] == [run / "lora"]
    fake = read_records(run / "data/synthetic")
    assert len(fake) == 8 and all(r.requested_findings is not None for r in fake)
    assert (run / "ti/learned_embeds.safetensors").is_file()
    assert len(read_records(run / "gen_ti")) == 2
    assert [Path(p) for p in _json(run / "gen_ti/generate.json")["identity"]["embeddings"]] == [run / "ti"]

    adherence = _json(run / "eval/adherence/adherence.json")
    assert adherence["n"] == 8 and adherence["attributes"]["tumor_present"]["n"] == 8
    assert adherence["schema_version"] == 2 and 0 <= adherence["attributes"]["tumor_present"]["value"] <= 1
    assert adherence["judge_real_test_accuracy"]["tumor_present"] is not None

    downstream = _json(run / "eval/downstream/downstream.json")
    assert set(downstream["conditions"]) == {"TRTR", "TSTR"}
    # the SD model makes RGB images and the phantom is grayscale: TSTR trained on all 8 of them
    assert downstream["conditions"]["TSTR"]["n_synthetic"] == 8 and downstream["conditions"]["TSTR"]["n_real"] == 0
    assert downstream["test"]["n"] == len([r for r in read_records(run / "data/real") if r.split == "test"])
    for cond in downstream["conditions"].values():
        assert 0 <= cond["metrics"]["auroc"]["value"] <= 1

    captions = _json(run / "eval/captions/captions.json")
    assert captions["n_reference"] == 32 and captions["captioners"]["mask"]["missing_predictions"] == 0
    # two code paths score the same mask captions against the same phantom truth: they must agree
    caption_summary = _json(run / "run.json")["stages"]["caption"]["summary"]["accuracy_vs_original"]
    assert (captions["captioners"]["mask"]["attributes"]["tumor_present"]["value"]
            == pytest.approx(caption_summary["tumor_present"]["accuracy"]))


def test_cheap_stage_kinds_run_write_sane_outputs_and_skip_when_unchanged(cheap_run):
    run, first, again = cheap_run
    assert [s.status for s in first.stages] == ["ran"] * 11
    assert again.skipped == [s.name for s in again.stages]
    _check_cheap_outputs(run)
    summaries = _json(run / "run.json")["stages"]
    assert set(summaries["downstream"]["summary"]["auroc"]) == {"TRTR", "TSTR"}
    assert summaries["captions"]["summary"]["accuracy"]["mask"]["tumor_present"] > 0.5


def test_report_shows_training_adherence_downstream_and_caption_accuracy(cheap_run):
    html = build_report(cheap_run[0])
    ids = re.findall(r'<section id="([a-z]+)"', html)
    assert ids == ["summary", "grids", "training", "adherence", "downstream", "captions", "provenance"]
    for text in ("judge: loss per epoch", "lora: training loss", "lora: step-0000004.png", "ti: training loss",
                 "adherence: prompt adherence per attribute", "downstream: TRTR vs TSTR",
                 "captions: caption accuracy against the reference (32 images)", "AUROC TSTR (downstream)",
                 "captioner mask: tumour presence (captions, n=32)"):
        assert text in html, text
    trained = html[html.index("What was trained on what"):html.index("<h3>Stages</h3>")]
    assert "train.lora" in trained and "train.judge" in trained and "train.textual-inversion" in trained


@pytest.fixture(scope="module")
def full_kinds_run(tmp_path_factory, tiny_sd):
    """The cheap study plus every other stage kind; the chat server stays up for the rerun."""
    from synthmed.testing.chat_server import ChatServer, Reply, findings_table, image_key
    from synthmed.testing.pipelines import write_tiny_kandinsky22

    root = tmp_path_factory.mktemp("kinds-full")
    prior, decoder = write_tiny_kandinsky22(root / "k22")
    answers: dict[str, str] = {}

    def vlm(req):  # reads a scan as the mask captioner did; says "left tumour" to every localisation prompt
        if "red region marks the tumour" in req.text():
            return Reply(json.dumps({"findings": {"tumor_present": True, "hemisphere": "left"},
                                     "explanation": "The red region is a bright mass."}))
        images = req.images()
        known = answers.get(image_key(images[0])) if images else None
        if known is None:
            return Reply("I cannot tell from this picture.")
        return Reply(json.dumps({"findings": json.loads(known), "explanation": "Read from the scan."}))

    with ChatServer(vlm) as srv:
        cheap = cheap_stages(tiny_sd, write_class_folders(root / "folders"))
        cfg = _study(cheap + slow_stages(tiny_sd, prior, decoder, srv.base_url))
        run_dir = root / "run"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:  # the answers need the captions, so the first run stops after them
            run_pipeline(load_pipeline_config(data={**cfg, "stages": cfg["stages"][:3]}), run_dir)
        finally:
            torch.set_num_threads(threads)
        answers.update(findings_table(str(run_dir / "data/real")))
        first, again = _run_twice(cfg, run_dir)
        requests = len(srv.requests)
    return run_dir, first, again, requests


@pytest.mark.slow
def test_every_stage_kind_runs_through_the_runner(full_kinds_run):
    run, first, again, requests = full_kinds_run
    statuses = {s.name: s.status for s in first.stages}
    assert {statuses.pop(n) for n in ("imported", "phantom", "caption")} == {"skipped"}  # the partial run's
    assert set(statuses.values()) == {"ran"}
    assert again.skipped == [s.name for s in again.stages]
    _check_cheap_outputs(run)

    for stage in ("stage1-decoder", "stage2-prior", "stage3-decoder"):
        assert (run / "kandinsky" / stage / "pytorch_lora_weights.safetensors").is_file(), stage
    kandinsky = read_records(run / "gen_kandinsky")
    assert len(kandinsky) == 4 and all(r.requested_findings is not None for r in kandinsky)

    assert (run / "localizer/decoders.safetensors").is_file() and (run / "localizer/backbone").is_dir()
    test_rows = [r.file_name for r in read_records(run / "data/real") if r.split == "test"]
    preds = [json.loads(line) for line in (run / "localized/predictions.jsonl").read_text().splitlines()]
    assert sorted(p["file_name"] for p in preds) == sorted(test_rows)
    assert all((run / "localized" / p["overlay"]).is_file() for p in preds)
    metrics = _json(run / "localized/metrics.json")
    assert 0 <= metrics["metrics"]["pixel_auroc"]["value"] <= 1 and metrics["n_images"] == len(test_rows)

    explained = _json(run / "explained/explanation.json")
    assert explained["n_images"] == 3 and requests == 3 * 3  # the rerun sent nothing
    # zero-shot sends the scan itself (the server knows its captions); the localisation modes are scored too
    scores = explained["scores"]
    presence = {mode: sc["attributes"]["tumor_present"]["value"] for mode, sc in scores.items()}  # schema 2
    assert scores["zero-shot"]["parsed_fraction"] == 1.0 and presence["zero-shot"] == 1.0
    with_tumour = sum(i["reference_findings"]["tumor_present"] for i in explained["items"]) / 3
    for mode in ("instruction", "chain-of-thought"):
        assert scores[mode]["parsed_fraction"] == 1.0
        assert presence[mode] == pytest.approx(with_tumour)


@pytest.mark.slow
def test_report_of_every_stage_kind_renders_in_chromium(full_kinds_run, tmp_path):
    from PIL import Image

    from synthmed.testing.browser import CHROMIUM, chromium

    run = full_kinds_run[0]
    html = build_report(run)
    ids = re.findall(r'<section id="([a-z]+)"', html)
    assert ids == ["summary", "grids", "training", "adherence", "downstream", "captions", "localisation",
                   "explanations", "provenance"]
    for text in ("kandinsky/stage1-decoder: training loss", "kandinsky/stage2-prior: step-0000004.png",
                 "localizer: loss first epoch", "Real (caption) vs generated (gen_kandinsky)",
                 "Anomaly maps (left) and predicted regions", "pixel_auroc (localized)", "explained: api:test-vlm",
                 "localisation shown to the VLM", "Read from the scan."):
        assert text in html, text
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the report was checked as HTML only")
    report = write_report(run, tmp_path / "report.html")
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<img ") >= 30 and dom.stdout.count("<svg") >= 10
    shot = tmp_path / "report.png"
    res = chromium("--window-size=1280,8000", f"--screenshot={shot}", report.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    lo, hi = Image.open(shot).convert("L").getextrema()
    assert hi - lo > 100
