"""Typed LDM configs: YAML files, defaults, and errors that name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmed.errors import ConfigError
from synthmed.train.ldm import LDMTrainConfig
from synthmed.utils.configs import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_demo_yaml_spells_out_the_defaults():
    cfg = load_config(LDMTrainConfig, CONFIGS / "ldm-demo.yaml", {"data": "d", "out": "o"})
    assert cfg == LDMTrainConfig(data="d", out="o", minutes=8)


def test_msdm_yaml_is_the_paper_setup():
    cfg = load_config(LDMTrainConfig, CONFIGS / "ldm-msdm.yaml", {"data": "d", "out": "o"})
    assert cfg.resolution == 256
    assert cfg.text_encoder == "openai/clip-vit-large-patch14"
    assert cfg.unet.context_dropout == pytest.approx(0.1)
    assert cfg.unet.use_paraphrases


def test_unknown_yaml_field_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: d\nout: o\nunet:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unet\.learning_rate"):
        load_config(LDMTrainConfig, bad)


def test_flags_override_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: d\nout: o\nseed: 3\nresolution: 64\n")
    cfg = load_config(LDMTrainConfig, f, {"seed": 7, "max_steps": 5})
    assert (cfg.seed, cfg.resolution) == (7, 64)
    assert cfg.stage_max_steps(cfg.unet) == cfg.stage_max_steps(cfg.autoencoder) == 5


def test_resolution_must_fit_the_autoencoder():
    with pytest.raises(ConfigError, match="resolution 102 is not a multiple of the autoencoder's downsample factor 8"):
        load_config(LDMTrainConfig, None, {"data": "d", "out": "o", "resolution": 102})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(LDMTrainConfig, tmp_path / "nope.yaml")
