"""Model cards for each artifact kind (validated by huggingface_hub.ModelCard) and `synthmed push`, offline."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from huggingface_hub import ModelCard

from synthmed.errors import ConfigError, DataError
from synthmed.judge.io import resolve_judge
from synthmed.share import card_text, files_to_push, push, write_model_card
from synthmed.share.card import MARKER


def _artifact(tmp_path, kind, **prov):
    folder = tmp_path / kind
    folder.mkdir()
    (folder / "synthmed.json").write_text(json.dumps({"kind": kind, "packages": {"synthmed": "0.1.0"}, **prov}))
    (folder / "weights.safetensors").write_bytes(b"\0" * 16)
    return folder


@pytest.fixture
def judge_dir(tmp_path):
    return shutil.copytree(resolve_judge("builtin:phantom-128-robust"), tmp_path / "judge")


def test_judge_card_loads_and_carries_its_metrics(judge_dir):
    card = ModelCard.load(write_model_card(judge_dir, license="apache-2.0"))
    assert card.data.license == "apache-2.0" and card.data.library_name == "synthmed"
    assert {"synthmed", "medical-imaging", "synthetic-data"} <= set(card.data.tags)
    assert "| accuracy on real tumor_present (test split, n=600) | 0.980 |" in card.text
    assert card.text.count("tumor_present") == 1 and "| data hash (sha256) | " in card.text
    assert "not a medical device" in card.text and "privacy" in card.text


@pytest.mark.parametrize("kind, prov, expect", [
    ("ldm", {"data": {"hash": "ab12", "rows": 840, "split": "train"}, "seed": 0,
             "stages": {"autoencoder": {"pretrained": "builtin:vae"}, "unet": {"steps": 3600, "seconds": 9.0}}},
     {"library_name": "diffusers", "pipeline_tag": "text-to-image"}),
    ("lora", {"config": {"base": "runwayml/stable-diffusion-v1-5", "seed": 1}, "result": {"steps": 500}},
     {"library_name": "diffusers", "base_model": "runwayml/stable-diffusion-v1-5"}),
    ("textual_inversion", {"config": {"base": "sd-base"}, "tokens": {"<glioma>": 4}},
     {"library_name": "diffusers", "instance_prompt": "<glioma>"}),
    ("localizer", {"config": {"backbone": "scratch"}}, {"library_name": "synthmed"}),
])
def test_cards_of_each_kind(tmp_path, kind, prov, expect):
    card = ModelCard.load(write_model_card(_artifact(tmp_path, kind, **prov)))
    for key, value in expect.items():
        assert getattr(card.data, key) == value, key
    assert MARKER in card.content and f"| kind | {kind} |" in card.text
    if kind == "textual_inversion":
        assert "`<glioma>` (4 vectors)" in card.text
    if kind == "ldm":
        assert "| steps | autoencoder builtin:vae, unet 3600 |" in card.text
    if kind == "localizer":
        assert card.data.base_model is None  # trained from scratch


def test_cards_never_replace_a_users_readme(tmp_path):
    folder = _artifact(tmp_path, "ldm")
    write_model_card(folder)
    write_model_card(folder)  # its own card: rewritten
    (folder / "README.md").write_text("# my notes\n")
    with pytest.raises(DataError, match="not written by synthmed"):
        write_model_card(folder)
    assert (folder / "README.md").read_text() == "# my notes\n"
    with pytest.raises(DataError, match="no synthmed.json"):
        card_text(tmp_path)


def test_what_is_pushed_and_what_is_refused(tmp_path):
    folder = _artifact(tmp_path, "lora")
    for extra in ("checkpoints/step-10/optimizer.safetensors", "logs/events", "cache/latents.safetensors",
                  ".synthmed/lock", "unet/config.json"):
        (folder / extra).parent.mkdir(parents=True, exist_ok=True)
        (folder / extra).write_text("x")
    assert [str(p) for p in files_to_push(folder)] == ["synthmed.json", "unet/config.json", "weights.safetensors"]
    (folder / "emb.pt").write_bytes(b"pickle")
    with pytest.raises(DataError, match="pickled weights") as err:
        files_to_push(folder)
    assert "emb.pt" in str(err.value)
    (folder / "emb.pt").unlink()
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    (folder / "link.txt").symlink_to(outside)
    with pytest.raises(DataError, match="outside the artifact"):
        files_to_push(folder)


def test_push_offline_and_unreachable_fail_cleanly(tmp_path, monkeypatch):
    folder = _artifact(tmp_path, "ldm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="offline"):
        push(folder, "someone/model")
    assert ModelCard.load(folder / "README.md").data.library_name == "diffusers"  # the card is written first
    # online, but the Hub endpoint is a closed local port: the call is formed and fails with a clear message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ConfigError, match="could not be reached") as err:
        push(folder, "someone/model")
    assert "hf_test_token_not_real" not in str(err.value)
