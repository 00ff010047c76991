"""Every example pipeline config under configs/ validates offline; the demo config matches `synthmed demo`."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.errors import ConfigError
from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.demo import DemoConfig, demo_pipeline
from synthmed.pipeline.runner import check_pipeline

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("run-*.yaml"))


def test_the_example_configs_are_there():
    names = {p.name for p in CONFIGS}
    assert {"run-demo.yaml", "run-seed000-lora.yaml", "run-seed001-msdm-kandinsky.yaml",
            "run-seed002-textual-inversion.yaml", "run-seed003-localize-explain.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_checks(path, tmp_path):
    cfg = load_pipeline_config(path)
    result = check_pipeline(cfg, tmp_path / "run")
    assert len(result.lines) == len(cfg.stages)
    assert all(" ok " in line for line in result.lines), result.lines


def test_check_from_the_command_line(tmp_path):
    res = CliRunner().invoke(app, ["run", "--check", str(CONFIGS[0])])
    assert res.exit_code == 0, res.output
    assert "ok (" in res.output


def test_demo_yaml_is_the_built_in_demo():
    built = load_pipeline_config(data=demo_pipeline(DemoConfig(out=Path("runs/demo"))))
    shipped = load_pipeline_config(Path(__file__).parents[2] / "configs" / "run-demo.yaml")
    assert yaml.safe_dump(shipped.model_dump()["stages"]) == yaml.safe_dump(built.model_dump()["stages"])
    assert (shipped.minutes, shipped.seed, shipped.min_auto_minutes, shipped.threads) == (
        built.minutes, built.seed, built.min_auto_minutes, built.threads) and built.threads == 1


def test_quality_yaml_is_the_built_in_quality_recipe():
    built = load_pipeline_config(data=demo_pipeline(DemoConfig(out=Path("runs/quality"), preset="quality")))
    shipped = load_pipeline_config(Path(__file__).parents[2] / "configs" / "run-quality.yaml")
    assert yaml.safe_dump(shipped.model_dump()["stages"]) == yaml.safe_dump(built.model_dump()["stages"])
    assert shipped.threads is built.threads is None  # the quality recipe uses every core
    stages = {s.name: s for s in built.stages}
    assert stages["train_ldm"].settings["unet"]["max_steps"] > 3600  # longer than the demo
    assert stages["downstream"].settings["conditions"] == ["trtr", "tstr"]
    with pytest.raises(ConfigError, match="--quick"):
        DemoConfig(out=Path("x"), quick=True, preset="quality")
