"""The pipeline config: references between stages, and the errors a user sees."""

import pytest

from synthmed.errors import ConfigError
from synthmed.pipeline.config import load_pipeline_config, substitute


def _cfg(stages):
    return load_pipeline_config(data={"stages": stages})


def test_references_are_the_graph_edges_and_downstream_follows_them():
    cfg = _cfg([{"name": "a", "kind": "data.phantom"},
                {"name": "b", "kind": "caption", "settings": {"data": "${a}"}},
                {"name": "c", "kind": "generate", "settings": {"findings_grid": "balanced:${b}", "x": ["${a}/images"]}},
                {"name": "d", "kind": "data.phantom"}])
    assert cfg.stage("c").references() == ["b", "a"]
    assert cfg.downstream_of("a") == ["b", "c"]
    assert cfg.downstream_of("d") == []
    assert substitute({"g": "balanced:${b}", "l": ["${a}/images"]}, {"a": "/r/a", "b": "/r/b"}) == \
        {"g": "balanced:/r/b", "l": ["/r/a/images"]}


@pytest.mark.parametrize(("stages", "message"), [
    ([{"name": "a", "kind": "x", "settings": {"data": "${b}"}}, {"name": "b", "kind": "x"}], "not an earlier stage"),
    ([{"name": "a", "kind": "x"}, {"name": "a", "kind": "x"}], "used twice"),
    ([{"name": "a", "kind": "x", "out": "data"}, {"name": "b", "kind": "x", "out": "data/real"}], "overlapping"),
    ([{"name": "a", "kind": "x", "out": "../elsewhere"}], "inside the run directory"),
    ([{"name": "a b", "kind": "x"}], "letters, digits"),
    ([{"name": "a", "kind": "x", "setings": {}}], "setings"),
])
def test_bad_graphs_are_refused_with_the_field_named(stages, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(stages)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("stages: []\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_pipeline_config(path)
