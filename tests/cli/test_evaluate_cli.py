import json

from typer.main import get_command
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.data.dataset import read_records
from synthmed.errors import ConfigError, DataError

runner = CliRunner()


def test_commands_are_registered():
    root = get_command(app)
    assert {"downstream", "adherence", "captions"} <= set(root.commands["evaluate"].commands)
    assert "judge" in root.commands["train"].commands


def test_evaluate_captions_prints_seed000_table(tmp_path, phantom_dir):
    pred = tmp_path / "ovis.jsonl"
    pred.write_text("".join(json.dumps({"file_name": r.file_name, "findings": r.findings.to_dict()}) + "\n"
                            for r in read_records(phantom_dir)[:20]))
    out = tmp_path / "captions.json"
    result = runner.invoke(app, ["evaluate", "captions", "--pred", str(pred), "--ref", str(phantom_dir),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ovis" in result.output and "Loc." in result.output and "Orient." in result.output
    assert "28 reference images have no prediction" in result.output
    assert json.loads(out.read_text())["captioners"]["ovis"]["missing_predictions"] == 28


def test_adherence_on_a_real_dataset_names_the_missing_field(tmp_path, phantom_dir):
    result = runner.invoke(app, ["evaluate", "adherence", "--fake", str(phantom_dir), "--judge", str(tmp_path)])
    assert isinstance(result.exception, DataError)
    assert "line 1" in str(result.exception) and "requested_findings" in str(result.exception)


def test_bad_options_are_config_errors(tmp_path, phantom_dir):
    result = runner.invoke(app, ["evaluate", "downstream", "--real", str(phantom_dir), "--out",
                                 str(tmp_path / "m.json"), "--preset", "huge"])
    assert isinstance(result.exception, ConfigError) and "paper, cpu, quick" in str(result.exception)
    result = runner.invoke(app, ["train", "judge", "--data", str(phantom_dir)])
    assert isinstance(result.exception, ConfigError) and "out" in str(result.exception)


def test_example_yaml_configs_validate():
    from pathlib import Path

    from synthmed.evaluate.downstream import DownstreamConfig
    from synthmed.judge import JudgeTrainConfig
    from synthmed.utils.configs import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    assert load_config(DownstreamConfig, configs / "downstream-phantom.yaml").preset == "cpu"
    judge = load_config(JudgeTrainConfig, configs / "judge-phantom.yaml", {"epochs": 3})
    assert judge.resolve()[1].epochs == 3 and not judge.resolve()[1].augment.hflip
