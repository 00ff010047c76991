"""`synthmed study create | score` from the command line (errors reach `synthmed` as SynthmedError: one line, exit
status 2); `serve` without its extra."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.errors import ConfigError, DataError
from synthmed.study.layout import read_key, read_settings
from synthmed.study.store import AnswerStore


def test_create_then_score(study_data, tmp_path):
    real, fake = study_data
    runner = CliRunner()
    out = tmp_path / "s"
    res = runner.invoke(app, ["study", "create", "--real", str(real), "--fake", str(fake), "--out", str(out),
                              "--n-real", "4", "--questions", "realism", "--seed", "2", "--title", "Pilot"])
    assert res.exit_code == 0, res.output
    assert "8 images" in res.output and "synthmed study serve" in res.output
    settings = read_settings(out)
    assert settings.title == "Pilot" and settings.questions == ["realism"] and settings.seed == 2
    res = runner.invoke(app, ["study", "score", str(out)])
    assert isinstance(res.exception, DataError) and "no answers yet" in str(res.exception)
    key = read_key(out)
    store = AnswerStore(out)
    for reader in store.add_readers(["ann", "bob"], settings):
        for item in reader.order:
            store.add_answer(reader.token, item, {"confidence": 5 if key.items[item].origin == "synthetic" else 2,
                                                  "realism": 3})
    res = runner.invoke(app, ["study", "score", str(out), "--n-boot", "100", "--out", str(tmp_path / "r.json")],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "pooled" in res.output and "1.000" in res.output and (tmp_path / "r.json").is_file()


def test_create_errors_name_the_problem(study_data, tmp_path):
    real, _ = study_data
    res = CliRunner().invoke(app, ["study", "create", "--real", str(real), "--fake", str(tmp_path / "nope"),
                                   "--out", str(tmp_path / "s")])
    assert isinstance(res.exception, DataError) and "nope" in str(res.exception)
    res = CliRunner().invoke(app, ["study", "create", "--real", str(real), "--fake", str(real), "--out",
                                   str(tmp_path / "s"), "--questions", "realism,colour"])
    assert isinstance(res.exception, ConfigError) and "questions" in str(res.exception)


def test_serve_without_the_extra_says_what_to_install(study, monkeypatch):
    from synthmed.study.server import serve

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ConfigError, match=r"synthmed\[study\]"):
        serve(study)
