"""The reader app as users run it (`synthmed study serve`, a real uvicorn process): kills and load lose nothing."""

from __future__ import annotations

import signal
import threading

import httpx

from synthmed.study import StudyCreateConfig, create_study
from synthmed.study.store import AnswerStore
from synthmed.testing.study import free_port, start_server, stop


def _answer(item: str) -> dict:
    return {"item": item, "confidence": 4, "realism": 2}


def test_answers_survive_a_killed_server(study_data, tmp_path):
    real, fake = study_data
    study = create_study(StudyCreateConfig(real=real, fake=fake, out=tmp_path / "s", n_real=5, n_fake=5))
    port = free_port()
    proc, links = start_server(study, port, "--readers", "ann,bob")
    assert set(links) == {"ann", "bob"}
    token = links["ann"].rsplit("/", 1)[1]
    api = f"http://127.0.0.1:{port}/api/{token}"
    try:
        for _ in range(7):
            item = httpx.get(f"{api}/next").json()["item"]
            assert httpx.post(f"{api}/answer", json=_answer(item)).status_code == 200
        proc.send_signal(signal.SIGKILL)  # no shutdown, no flush: what was acknowledged must be on disk
        proc.wait(timeout=30)
        assert len(AnswerStore(study).answers()) == 7
        port = free_port()
        proc, again = start_server(study, port)
        assert again == {name: url.replace(url.split("/")[2], f"127.0.0.1:{port}") for name, url in links.items()}
        nxt = httpx.get(f"http://127.0.0.1:{port}/api/{token}/next").json()
        assert nxt["index"] == 7
    finally:
        stop(proc)


def test_twenty_readers_a_hundred_items_each_every_answer_once(study_data, tmp_path):
    """20 readers x 100 images, two racing clients per reader (a double submit on every item)."""
    real, fake = study_data
    study = create_study(StudyCreateConfig(real=real, fake=fake, out=tmp_path / "s", n_real=50, n_fake=50))
    port = free_port()
    proc, links = start_server(study, port, "--n-readers", "20")
    assert len(links) == 20
    results: dict[str, list[int]] = {}
    errors: list[str] = []

    def read_all(name: str, url: str) -> None:
        api = url.replace("/r/", "/api/")
        codes = []
        with httpx.Client(timeout=60) as client:
            try:
                while not (nxt := client.get(f"{api}/next").json()).get("done"):
                    codes.append(client.post(f"{api}/answer", json=_answer(nxt["item"])).status_code)
            except Exception as err:  # noqa: BLE001 - reported below with the reader's name
                errors.append(f"{name}: {err!r}")
        results.setdefault(name, []).extend(codes)

    threads = [threading.Thread(target=read_all, args=(name, url)) for name, url in links.items() for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        stop(proc)
    assert not errors, errors[:3]
    answers = AnswerStore(study).answers()
    assert len(answers) == 2000
    assert len({(a["reader"], a["item"]) for a in answers}) == 2000
    for name, codes in results.items():
        assert codes.count(200) == 100, name  # each item stored once for this reader...
        assert set(codes) <= {200, 409}, name  # ...and the racing duplicate refused, never stored
