"""Paraphrasers: template (offline), api: (loopback server) and hf: (tiny LM); every paraphrase checked."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from synthmed.caption import caption_dataset
from synthmed.cli.main import app
from synthmed.data import read_records
from synthmed.errors import ConfigError
from synthmed.findings import parse_text
from synthmed.paraphrase import check_paraphrase, get_paraphraser, paraphrase_dataset
from synthmed.paraphrase.base import ParaphraseInput
from synthmed.testing.chat_server import ChatServer, Reply
from synthmed.testing.vlm import write_tiny_causal_lm

TEXT = ("Axial T1 contrast-enhanced MRI. A large irregular ring-enhancing tumour in the left frontal lobe, "
        "oriented obliquely, with surrounding edema and no mass effect.")


def test_check_rejects_a_paraphrase_that_moves_the_tumour():
    assert check_paraphrase(TEXT, "Post-contrast axial T1. In the frontal lobe of the left hemisphere there is a "
                                  "big irregularly shaped rim-enhancing mass lying diagonally, with perilesional "
                                  "oedema and no significant mass effect.", "brain_mri") is None
    moved = check_paraphrase(TEXT, TEXT.replace("left", "right"), "brain_mri")
    assert moved == "changes hemisphere ('left' -> 'right')"
    assert check_paraphrase(TEXT, TEXT.replace(", oriented obliquely", ""), "brain_mri").startswith(
        "changes orientation")
    assert check_paraphrase(TEXT, "Something is there.", "brain_mri").startswith("unparseable")
    assert check_paraphrase(TEXT, TEXT, "brain_mri") == "identical to the original"


def test_template_paraphrases_keep_the_findings_and_are_deterministic(tmp_path, phantom_dir):
    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        shutil.copytree(phantom_dir, root)
        s = paraphrase_dataset(root, "template", per_caption=6, progress=False, seed=3)
        roots.append(root)
    assert s.rows == 48 and s.proposed == 48 * 6 and s.rejected == 0 and s.accepted == s.proposed
    assert s.unique_after > 4 * s.unique_before
    a, b = (read_records(r) for r in roots)
    assert [r.paraphrases for r in a] == [r.paraphrases for r in b]
    for rec in a:
        assert len(set(rec.paraphrases)) == 6 and rec.text not in rec.paraphrases
        assert all(parse_text(p) == parse_text(rec.text) for p in rec.paraphrases)
    other = get_paraphraser("template", seed=4).paraphrase([ParaphraseInput("k", TEXT)], 6)[0]
    assert other != get_paraphraser("template", seed=3).paraphrase([ParaphraseInput("k", TEXT)], 6)[0]


def test_recaptioning_drops_paraphrases_of_the_old_caption(tmp_path, phantom_dir):
    root = tmp_path / "ph"
    shutil.copytree(phantom_dir, root)
    paraphrase_dataset(root, "template", per_caption=2, progress=False)
    caption_dataset(root, "mask", progress=False)
    for rec in read_records(root):
        assert rec.paraphrases == [] or rec.text == rec.original_text


def test_api_paraphraser_rejects_changed_findings_and_caches(small_dir, api_key):
    def answer(req):
        caption = req.text().split("Caption: ")[1]
        side = "left" if "left" in caption else "right"
        other = "right" if side == "left" else "left"
        paras = [f"There is a tumor in the frontal lobe of the {side} hemisphere.",  # same findings
                 f"A lesion in the {other} frontal lobe.",  # moved: a silent label error
                 "An abnormality."]  # says nothing checkable
        return Reply(json.dumps({"paraphrases": paras}))

    with ChatServer(answer) as srv:
        s = paraphrase_dataset(small_dir, "api:llm", per_caption=3, base_url=srv.base_url, backoff_s=0.01,
                               progress=False)
        assert s.proposed == 12 and s.accepted == 4 and s.rejected == 8
        assert s.rejection_reasons["changes hemisphere"] == 4 and s.rejection_reasons["unparseable"] == 4
        assert srv.requests[0].body["response_format"]["json_schema"]["name"] == "paraphrases"
        assert srv.requests[0].headers["Authorization"] == f"Bearer {api_key}"
        s2 = paraphrase_dataset(small_dir, "api:llm", per_caption=3, base_url=srv.base_url, progress=False)
        assert len(srv.requests) == 4 and s2.accepted == 4  # second run from the cache
    for rec in read_records(small_dir):
        assert rec.paraphrases == [f"There is a tumor in the frontal lobe of the {rec.findings.hemisphere} hemisphere."]


def test_hf_paraphraser_with_tiny_lm_rejects_gibberish(tmp_path, small_dir):
    model = write_tiny_causal_lm(tmp_path / "tiny-lm")
    s = paraphrase_dataset(small_dir, f"hf:{model}", per_caption=2, progress=False, max_new_tokens=24,
                           batch_size=4)
    assert s.accepted == 0 and s.rejected == s.proposed and s.proposed >= 1
    assert all(r.paraphrases == [] for r in read_records(small_dir))


def test_cli_paraphrase_and_errors(tmp_path, phantom_dir):
    root = tmp_path / "ph"
    shutil.copytree(phantom_dir, root)
    result = CliRunner().invoke(app, ["paraphrase", str(root), "--per-caption", "2"])
    assert result.exit_code == 0, result.output
    assert "96 of 96 paraphrases kept (0 rejected" in result.output and "unique prompts" in result.output
    with pytest.raises(ConfigError, match="available: api, hf, template"):
        paraphrase_dataset(root, "gpt", progress=False)
    with pytest.raises(ConfigError, match="--per-caption"):
        paraphrase_dataset(root, "template", per_caption=0, progress=False)
