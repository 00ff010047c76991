"""A secret given in a pipeline config reaches the service that needs it and no file synthmed writes."""

from __future__ import annotations

import json

from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.hashing import HashCache
from synthmed.pipeline.runner import run_pipeline
from synthmed.report import write_report
from synthmed.testing.chat_server import ChatServer, Reply
from synthmed.utils.secrets import REDACTED, fingerprint_secrets, is_secret_name, redact_secrets

KEY = "sk-test-0123456789abcdefSECRET"
SALT = "pepper-for-pseudonyms-42"


def _everything_under(root) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_a_key_in_a_config_appears_in_no_output(tmp_path):
    answer = json.dumps({"tumor_present": False})
    with ChatServer(lambda req: Reply(answer)) as srv:
        cfg = {"name": "secret", "seed": 0, "stages": [
            {"name": "phantom", "kind": "data.phantom", "settings": {"n": 4, "size": 32, "slices_per_patient": 1}},
            {"name": "caption", "kind": "caption", "settings": {
                "data": "${phantom}", "captioner": "api:test-vlm",
                "options": {"api_key": KEY, "base_url": srv.base_url, "backoff_s": 0.01}}}]}
        run_pipeline(load_pipeline_config(data=cfg), tmp_path / "run")
    assert srv.requests and all(r.headers["Authorization"] == f"Bearer {KEY}" for r in srv.requests)
    write_report(tmp_path / "run", tmp_path / "run" / "report.html")
    written = _everything_under(tmp_path / "run")
    assert KEY not in written
    assert REDACTED in (tmp_path / "run" / "config.yaml").read_text()
    assert REDACTED in (tmp_path / "run" / "run.json").read_text()


def test_the_stage_key_changes_with_the_secret_without_containing_it():
    a, b = fingerprint_secrets({"id_salt": SALT}), fingerprint_secrets({"id_salt": SALT + "!"})
    assert a != b and SALT not in json.dumps(a) and a["id_salt"].startswith("scrypt:")
    assert fingerprint_secrets({"id_salt": SALT}) == a  # stable: an unchanged stage is skipped


def test_which_names_are_secrets():
    for name in ("api_key", "OPENAI_API_KEY", "hf_token", "access_token", "password", "id_salt", "id-salt",
                 "client_secret", "aws_secret_access_key", "Authorization"):
        assert is_secret_name(name), name
    for name in ("token", "max_new_tokens", "tokenizer", "key", "keep_patient_ids", "text_column", "tokens"):
        assert not is_secret_name(name), name
    nested = redact_secrets({"options": [{"api_key": KEY, "model": "m"}], "note": f"failed with {KEY}",
                             "token": "<glioma>", "empty_key": None})
    assert nested == {"options": [{"api_key": REDACTED, "model": "m"}], "note": f"failed with {REDACTED}",
                      "token": "<glioma>", "empty_key": None}


def test_the_hash_cache_stores_no_source_path(tmp_path):
    folder = tmp_path / "Doe_Jane"
    folder.mkdir()
    (folder / "scan.dcm").write_bytes(b"x" * 10)
    cache = HashCache(tmp_path / "hash-cache.json")
    cache.file(folder / "scan.dcm")
    cache.save()
    assert "Doe_Jane" not in (tmp_path / "hash-cache.json").read_text()
    again = HashCache(tmp_path / "hash-cache.json")
    assert again.file(folder / "scan.dcm") == cache.file(folder / "scan.dcm") and not again.dirty  # a cache hit
