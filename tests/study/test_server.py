"""The reader app's JSON API, its errors, and what a reader can and cannot see."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

from synthmed.data.imageio import load_image
from synthmed.study.layout import image_path, read_key, read_settings
from synthmed.study.server import MAX_BODY_BYTES, limited_app, prepare_readers, reader_urls

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


def _client(study) -> TestClient:
    return TestClient(limited_app(study))


def _full_answer(item, confidence=3, **kw):
    return {"item": item, "confidence": confidence, "realism": 3, "tumor_present": True, "hemisphere": "left", **kw}


def test_reader_reads_every_image_once_in_own_order(study):
    ann, bob = prepare_readers(study, ["ann", "bob"])
    assert ann.order != bob.order and sorted(ann.order) == sorted(read_settings(study).items)
    client = _client(study)
    info = client.get(f"/api/{ann.token}/study").json()
    assert info["reader"] == "ann" and info["total"] == 12 and info["questions"] == ["realism", "findings"]
    seen = []
    while True:
        nxt = client.get(f"/api/{ann.token}/next").json()
        if nxt.get("done"):
            assert nxt["total"] == 12
            break
        assert set(nxt) >= {"item", "image", "index", "total"} and nxt["index"] == len(seen)
        img = client.get(nxt["image"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/png"
        raw = client.get(nxt["pixels"]).content
        want = load_image(image_path(study, nxt["item"]))
        np.testing.assert_array_equal(np.frombuffer(raw, dtype=np.uint8).reshape(want.shape), want)
        r = client.post(f"/api/{ann.token}/answer", json=_full_answer(nxt["item"], seconds=1.5))
        assert r.status_code == 200 and r.json() == {"stored": True, "index": len(seen) + 1, "total": 12}
        seen.append(nxt["item"])
    assert tuple(seen) == ann.order
    # bob is untouched, and a restarted server (a new app on the same folder) keeps everyone's place and links
    again = _client(study)
    assert again.get(f"/api/{bob.token}/next").json()["item"] == bob.order[0]
    assert again.get(f"/api/{ann.token}/next").json() == {"done": True, "total": 12}
    assert [r.token for r in prepare_readers(study)] == [ann.token, bob.token]


def test_resume_mid_study(study):
    (ann,) = prepare_readers(study, ["ann"])
    client = _client(study)
    for item in ann.order[:5]:
        assert client.post(f"/api/{ann.token}/answer", json=_full_answer(item)).status_code == 200
    nxt = _client(study).get(f"/api/{ann.token}/next").json()
    assert (nxt["item"], nxt["index"]) == (ann.order[5], 5)


def test_unknown_token_is_refused_everywhere(study):
    (ann,) = prepare_readers(study, ["ann"])
    client = _client(study)
    item = ann.order[0]
    for path in ("/r/{t}", "/r/{t}/reader.js", "/r/{t}/reader.css", "/api/{t}/study", "/api/{t}/next",
                 f"/api/{{t}}/image/{item}", f"/api/{{t}}/pixels/{item}"):
        assert client.get(path.format(t=ann.token)).status_code == 200, path
        assert client.get(path.format(t="x" + ann.token[1:])).status_code == 403, path
    assert client.post("/api/nobody/answer", json=_full_answer(item)).status_code == 403
    for path in ("/", "/docs", "/openapi.json", "/redoc", "/api/next"):
        assert client.get(path).status_code == 404, path


def test_conflicts_are_409(study):
    ann, bob = prepare_readers(study, ["ann", "bob"])
    client = _client(study)
    url = f"/api/{ann.token}/answer"
    r = client.post(url, json=_full_answer("0123456789abcdef"))
    assert r.status_code == 409 and "not offered" in r.json()["detail"]
    r = client.post(url, json=_full_answer(ann.order[1]))
    assert r.status_code == 409 and "GET next" in r.json()["detail"]
    assert client.post(url, json=_full_answer(ann.order[0])).status_code == 200
    r = client.post(url, json=_full_answer(ann.order[0], confidence=6))
    assert r.status_code == 409 and "answered already" in r.json()["detail"]
    from synthmed.study.store import AnswerStore

    stored = AnswerStore(study).answers()
    assert len(stored) == 1 and stored[0]["confidence"] == 3  # the first answer stands


@pytest.mark.parametrize("body, field", [
    ({"confidence": 3, "realism": 3, "tumor_present": False}, "item"),
    ({"item": "{item}", "realism": 3, "tumor_present": False}, "confidence"),
    ({"item": "{item}", "confidence": 7, "realism": 3, "tumor_present": False}, "confidence"),
    ({"item": "{item}", "confidence": "3", "realism": 3, "tumor_present": False}, "confidence"),
    ({"item": "{item}", "confidence": 2.5, "realism": 3, "tumor_present": False}, "confidence"),
    ({"item": "{item}", "confidence": 3, "realism": 0, "tumor_present": False}, "realism"),
    ({"item": "{item}", "confidence": 3, "tumor_present": False}, "realism"),
    ({"item": "{item}", "confidence": 3, "realism": 3}, "tumor_present"),
    ({"item": "{item}", "confidence": 3, "realism": 3, "tumor_present": True}, "hemisphere"),
    ({"item": "{item}", "confidence": 3, "realism": 3, "tumor_present": False, "hemisphere": "left"}, "hemisphere"),
    ({"item": "{item}", "confidence": 3, "realism": 3, "tumor_present": True, "hemisphere": "up"}, "hemisphere"),
    ({"item": "{item}", "confidence": 3, "realism": 3, "tumor_present": False, "origin": "real"}, "origin"),
    ({"item": "{item}", "confidence": 3, "realism": 3, "tumor_present": False, "seconds": -1}, "seconds"),
])
def test_malformed_answers_are_422_naming_the_field(study, body, field):
    (ann,) = prepare_readers(study, ["ann"])
    body = {k: (v.format(item=ann.order[0]) if v == "{item}" else v) for k, v in body.items()}
    r = _client(study).post(f"/api/{ann.token}/answer", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]] and field in r.json()["detail"]


def test_bad_bodies(study):
    (ann,) = prepare_readers(study, ["ann"])
    client = _client(study)
    url = f"/api/{ann.token}/answer"
    r = client.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    r = client.post(url, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = json.dumps({"item": "x" * (MAX_BODY_BYTES + 10), "confidence": 1}).encode()
    r = client.post(url, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no content-length: the limit holds while the body streams in
        for _ in range(40):
            yield b" " * 1024

    r = client.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    from synthmed.study.store import AnswerStore

    assert AnswerStore(study).answers() == []


def test_no_path_traversal_through_image_ids(study):
    (ann,) = prepare_readers(study, ["ann"])
    client = _client(study)
    for item in ("..%2Fkey.json", "..%2F..%2Fstudy%2Fkey.json", "%2e%2e", "key", "../key.json",
                 "..%2Fanswers.sqlite", ann.order[0] + ".png"):
        for kind in ("image", "pixels"):
            r = client.get(f"/api/{ann.token}/{kind}/{item}")
            assert r.status_code == 404, (kind, item, r.status_code)
            assert b"origin" not in r.content


def test_nothing_a_reader_can_reach_reveals_the_truth(study):
    """Crawl every response a reader gets while reading the whole study: no truth, no source path or name."""
    (ann,) = prepare_readers(study, ["ann"])
    client = _client(study)
    bodies: list[bytes] = []
    headers_by_origin: dict[str, set] = {"real": set(), "synthetic": set()}
    key = read_key(study)

    def get(url):
        r = client.get(url)
        assert r.status_code == 200, url
        bodies.append(r.content)
        bodies.append(json.dumps(dict(r.headers)).encode())
        return r

    page = get(f"/r/{ann.token}").text
    for asset in ("reader.js", "reader.css"):
        assert f"/r/{ann.token}/{asset}" in page
        get(f"/r/{ann.token}/{asset}")
    get(f"/api/{ann.token}/study")
    sizes = set()
    while not (nxt := get(f"/api/{ann.token}/next").json()).get("done"):
        img = get(nxt["image"])
        get(nxt["pixels"])
        sizes.add(len(img.content))
        origin = key.items[nxt["item"]].origin
        headers_by_origin[origin].add(tuple(sorted((k, v) for k, v in img.headers.items() if k != "date")))
        r = client.post(f"/api/{ann.token}/answer", json=_full_answer(nxt["item"]))
        bodies.append(r.content)
    assert len(sizes) == 1  # every image has the same length
    assert len(headers_by_origin["real"] | headers_by_origin["synthetic"]) == 1  # and the same headers
    everything = b"\n".join(bodies)
    secrets_ = set()
    for entry in key.items.values():
        name = entry.file_name
        secrets_ |= {name, name.rsplit("/", 1)[-1], name.rsplit("/", 1)[-1].rsplit(".", 1)[0], entry.dataset}
    secrets_ |= {str(study), "key.json", '"origin"', '"real"', '"synthetic"', "requested_findings", "findings\":"}
    for s in secrets_:
        assert s.encode() not in everything, s


def test_reader_links(study):
    readers = prepare_readers(study, n_readers=3)
    assert [r.name for r in readers] == ["reader-1", "reader-2", "reader-3"]
    assert len({r.token for r in readers}) == 3 and all(len(r.token) >= 32 for r in readers)
    urls = reader_urls(readers, "127.0.0.1", 8765)
    assert urls[0] == ("reader-1", f"http://127.0.0.1:8765/r/{readers[0].token}")
    assert [r.token for r in prepare_readers(study, n_readers=2)] == [r.token for r in readers]  # kept
    with pytest.raises(Exception, match="not both"):
        prepare_readers(study, ["x"], 2)
