"""The api: captioner against a real chat-completions server on 127.0.0.1, with injected faults."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time

import pytest

from synthmed.caption import caption_dataset
from synthmed.caption.api import APICaptioner
from synthmed.data import read_records
from synthmed.errors import CaptionError, ConfigError
from synthmed.findings import BrainMRIFindings
from synthmed.llm.api import ChatClient, _parse_retry_after
from synthmed.testing.chat_server import ChatServer, Reply, findings_table, image_key

GOOD = json.dumps({"tumor_present": True, "hemisphere": "right", "lobe": "temporal", "size_mm": 30.0,
                   "shape": "oval", "intensity": "hyperintense", "orientation": "vertical", "edema": False})
GOOD_FINDINGS = BrainMRIFindings(tumor_present=True, hemisphere="right", lobe="temporal", size_mm=30.0, shape="oval",
                                 intensity="hyperintense", orientation="vertical", edema=False)
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}


def _everything_written(root) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and p.suffix == ".jsonl")


@pytest.fixture(scope="module")
def phantom_table(phantom_dir):
    return findings_table(str(phantom_dir))


def test_good_replies_give_the_servers_findings_and_keep_the_key_private(
        tmp_path, phantom_dir, phantom_table, api_key, caplog):
    root = tmp_path / "ph"
    shutil.copytree(phantom_dir, root)

    def answer(req):
        (img,) = req.images()
        return Reply(phantom_table[image_key(img)])

    with caplog.at_level(logging.DEBUG), ChatServer(answer) as srv:
        s = caption_dataset(root, "api:test-vlm", base_url=srv.base_url, progress=False, **FAST)
    assert s.captioned == 48 and s.failed == 0
    mask_root = tmp_path / "mask"
    shutil.copytree(phantom_dir, mask_root)
    caption_dataset(mask_root, "mask", progress=False)
    by_api, by_mask = read_records(root), read_records(mask_root)
    assert [r.findings for r in by_api] == [r.findings for r in by_mask]
    assert all(r.captioner == "api:test-vlm" for r in by_api)
    first = srv.requests[0]
    assert first.headers["Authorization"] == f"Bearer {api_key}"
    assert first.body["model"] == "test-vlm" and first.body["temperature"] == 0
    assert first.body["response_format"]["type"] == "json_schema"
    assert "patient's LEFT is on the RIGHT" in first.text()
    assert api_key not in _everything_written(root) and api_key not in caplog.text


def test_429_500_malformed_and_slow_replies_are_retried(small_dir, api_key):
    seen: dict[str, int] = {}
    lock = threading.Lock()
    faults = [Reply(status=429, headers={"Retry-After": "0"}), Reply(status=500), Reply(body="{not json"),
              Reply(GOOD, delay_s=1.0)]  # the slow one arrives after the client's timeout

    def answer(req):
        key = image_key(req.images()[0])
        with lock:
            n = seen[key] = seen.get(key, 0) + 1
        return faults[n - 1] if n <= len(faults) else Reply(GOOD)

    with ChatServer(answer) as srv:
        s = caption_dataset(small_dir, "api:m", base_url=srv.base_url, timeout_s=0.3, max_retries=5,
                            progress=False, **FAST)
    assert s.captioned == 4 and s.failed == 0
    assert sorted(seen.values()) == [5, 5, 5, 5]  # four faults, then the good reply
    assert all(r.findings == GOOD_FINDINGS for r in read_records(small_dir))


def test_exhausted_retries_fail_without_leaking_the_key_and_are_not_cached(small_dir, api_key):
    # A hostile server echoes the Authorization header back in its error body.
    def answer(req):
        return Reply(status=503, body=json.dumps({"error": f"overloaded; you sent {req.headers['Authorization']}"}))

    with ChatServer(answer) as srv:
        with pytest.raises(CaptionError, match="none of the 4 rows") as caught:  # nothing succeeded: an error
            caption_dataset(small_dir, "api:m", base_url=srv.base_url, max_retries=2, progress=False, **FAST)
        assert len(srv.requests) == 4 * 3
    assert caught.value.summary.failed == 4 and api_key not in str(caught.value)
    rec = read_records(small_dir)[0]
    assert "giving up after 3 attempts" in rec.caption_error and "HTTP 503" in rec.caption_error
    assert "Bearer ***" in rec.caption_error and api_key not in _everything_written(small_dir)
    assert rec.findings.lobe == "frontal"  # old findings kept, never a default
    with ChatServer(lambda req: Reply(GOOD)) as srv:  # the next run asks again (transient failures are not cached)
        s = caption_dataset(small_dir, "api:m", base_url=srv.base_url, progress=False, **FAST)
    assert s.captioned == 4 and s.cached == 0


def test_wrong_schema_is_sent_back_for_repair_then_recorded_unparseable(small_dir, api_key):
    def answer(req):
        if "could not be used" in req.text() and "img0" not in req.text():
            return Reply(GOOD)
        return Reply('{"tumour": "yes", "side": "left"}')

    with ChatServer(answer) as srv:
        s = caption_dataset(small_dir, "api:m", base_url=srv.base_url, progress=False, max_parse_retries=1, **FAST)
    assert s.captioned == 4  # every image repaired on the second try
    repair = srv.requests[-1]
    assert "keys outside the findings schema" in repair.text()
    assert [m["role"] for m in repair.body["messages"]] == ["system", "user", "assistant", "user"]

    def never(req):
        return Reply("The image shows a tumour.")

    before = read_records(small_dir)
    with ChatServer(never) as srv, pytest.raises(CaptionError, match="none of the 4 rows") as caught:
        caption_dataset(small_dir, "api:other", base_url=srv.base_url, progress=False, max_parse_retries=2, **FAST)
    assert caught.value.summary.failed == 4 and len(srv.requests) == 4 * 3
    after = read_records(small_dir)
    assert [r.findings for r in after] == [r.findings for r in before]
    rec = after[0]
    assert rec.caption_error.startswith("unparseable reply after 3 attempts: the reply contains no JSON object")
    assert rec.model_extra["caption_raw"].count("The image shows a tumour.") == 3
    with ChatServer(never) as srv:  # unparseable replies are cached: a rerun does not pay again
        with pytest.raises(CaptionError) as caught:
            caption_dataset(small_dir, "api:other", base_url=srv.base_url, progress=False, **FAST)
        assert caught.value.summary.cached == 4 and not srv.requests


def test_server_without_structured_output_gets_plain_requests(small_dir, api_key):
    def answer(req):
        if "response_format" in req.body:
            return Reply(status=400, body='{"error": {"message": "response_format is not supported"}}')
        return Reply(GOOD)

    with ChatServer(answer) as srv:
        s = caption_dataset(small_dir, "api:m", base_url=srv.base_url, progress=False, concurrency=1, **FAST)
    assert s.captioned == 4
    assert sum("response_format" in r.body for r in srv.requests) == 1  # asked once, then remembered


@pytest.mark.parametrize("concurrency", [1, 2])
def test_cache_and_resume_after_a_killed_job(small_dir, api_key, monkeypatch, concurrency):
    calls = {"n": 0}
    lock = threading.Lock()
    original = APICaptioner.caption

    def dies_on_second_call(self, items):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 2:
            raise KeyboardInterrupt
        return original(self, items)

    opts = {"base_url": None, "batch_size": 2, "progress": False, "concurrency": concurrency, **FAST}
    monkeypatch.setattr(APICaptioner, "caption", dies_on_second_call)
    with ChatServer(lambda req: Reply(GOOD)) as srv:
        opts["base_url"] = srv.base_url
        with pytest.raises(KeyboardInterrupt):
            caption_dataset(small_dir, "api:m", **opts)
        sent = len(srv.requests)
        cache_file = small_dir / ".synthmed" / "caption_cache.jsonl"
        kept = len(cache_file.read_text().splitlines()) if cache_file.is_file() else 0
        assert kept == sent < 4  # every answered request is cached; the killed one never reached the server
        monkeypatch.setattr(APICaptioner, "caption", original)
        s = caption_dataset(small_dir, "api:m", **opts)
        assert s.cached == kept and s.captioned == 4 and len(srv.requests) == sent + 4 - kept  # only what was lost
        s = caption_dataset(small_dir, "api:m", **opts)
        assert s.cached == 4 and len(srv.requests) == sent + 4 - kept
    cache = (small_dir / ".synthmed" / "caption_cache.jsonl").read_text()
    assert "api:m" not in cache and srv.base_url not in cache and "Bearer" not in cache


def test_concurrency_is_bounded(small_dir, api_key):
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def answer(req):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return Reply(GOOD)

    with ChatServer(answer) as srv:
        caption_dataset(small_dir, "api:m", base_url=srv.base_url, progress=False, concurrency=2, **FAST)
    assert state["max"] == 2


def test_configuration_errors(monkeypatch, small_dir):
    monkeypatch.delenv("SYNTHMED_API_BASE", raising=False)
    with pytest.raises(ConfigError, match="SYNTHMED_API_BASE"):
        caption_dataset(small_dir, "api:m", progress=False)
    with pytest.raises(ConfigError, match="needs a model name"):
        caption_dataset(small_dir, "api:", progress=False)
    monkeypatch.setenv("SYNTHMED_API_KEY", "")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    client = ChatClient("m", base_url="http://127.0.0.1:9/v1")
    assert client._http.headers["Authorization"] == "Bearer sk-fallback" and "sk-fallback" not in repr(client)


def test_retry_after_is_respected_up_to_the_cap():
    client = ChatClient("m", base_url="http://127.0.0.1:9/v1", backoff_s=0.5, max_backoff_s=10)
    assert client._backoff(0, "3") == 3.0
    assert client._backoff(0, "120") == 10.0
    assert 0.5 <= client._backoff(0, None) <= 0.625 and 2.0 <= client._backoff(2, None) <= 2.5
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") < 0


def test_cli_caption_with_api_server(small_dir, api_key):
    from typer.testing import CliRunner

    from synthmed.cli.main import app

    with ChatServer(lambda req: Reply(GOOD)) as srv:
        result = CliRunner().invoke(app, ["caption", str(small_dir), "-c", "api:m", "--base-url", srv.base_url])
        assert result.exit_code == 0, result.output
        assert "captioned 4 of 4 rows with 'api:m'" in result.output and api_key not in result.output
        again = CliRunner().invoke(app, ["caption", str(small_dir), "-c", "api:m", "--base-url", srv.base_url])
        assert "(4 from the cache)" in again.output
    bad = CliRunner().invoke(app, ["caption", str(small_dir), "--base-url", "http://x/v1"])
    assert isinstance(bad.exception, ConfigError) and "--base-url applies to api:<model> only" in str(bad.exception)


def test_requests_stay_in_flight_while_one_reply_is_slow(small_dir, api_key, tmp_path):
    """A slow reply holds up only its own image: the others keep the server busy meanwhile (no batch barrier)."""
    import numpy as np

    from synthmed.data.dataset import DatasetWriter

    rows = tmp_path / "rows"
    shutil.copytree(small_dir, rows)
    with DatasetWriter(rows) as w:  # 12 images in all: three batches of 4
        rng = np.random.default_rng(1)
        for i in range(8):
            w.add(f"more{i}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    finished = {"n": 0}
    lock = threading.Lock()
    released = threading.Event()
    outcome: dict = {}

    def answer(req):
        with lock:
            first = "slow" not in outcome
            outcome["slow"] = True
        if first:
            # Held until every other image is answered; a runner that waits for each batch's slowest reply
            # would not send the other batches, and this wait would run out instead.
            outcome["released_by_others"] = released.wait(timeout=20)
        with lock:
            finished["n"] += 1
            if finished["n"] == 11:
                released.set()
        return Reply(GOOD)

    with ChatServer(answer) as srv:
        summary = caption_dataset(rows, "api:m", base_url=srv.base_url, progress=False, concurrency=2,
                                  batch_size=4, **FAST)
    assert outcome["released_by_others"] and summary.captioned == 12
    assert [r.findings == GOOD_FINDINGS for r in read_records(rows)] == [True] * 12
