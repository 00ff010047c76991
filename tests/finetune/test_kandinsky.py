"""Kandinsky 2.2 prior / decoder LoRA on tiny pipelines: seed 001's staged order, vanilla loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.data.dataset import ImageDataset
from synthmed.errors import ConfigError
from synthmed.generate.adapters import LORA_FILE
from synthmed.testing.pipelines import write_tiny_kandinsky22
from synthmed.train.finetune.kandinsky import KandinskyTrainConfig, train_kandinsky

HERE = Path(__file__).parent
runner = CliRunner()


@pytest.fixture(scope="module")
def k22(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_kandinsky22(tmp_path_factory.mktemp("k22"))


def k_config(k22, data, out, **kw) -> KandinskyTrainConfig:
    prior, decoder = k22
    base = {"prior": str(prior), "decoder": str(decoder), "data": str(data), "out": str(out), "resolution": 32,
            "max_steps": 3, "optim": {"batch_size": 2, "lr": 1e-2}, "progress": False, "validation_steps": 2,
            "tensorboard": False, "prior_lora_spec": {"rank": 4}, "decoder_lora_spec": {"rank": 4}}
    return KandinskyTrainConfig.model_validate({**base, **kw})


@pytest.fixture(scope="module")
def staged(k22, ft_data, tmp_path_factory) -> Path:
    return train_kandinsky(k_config(k22, ft_data, tmp_path_factory.mktemp("staged") / "k"))


def test_staged_training_writes_three_stages_that_vanilla_diffusers_loads(k22, staged):
    out = staged
    stages = ["stage1-decoder", "stage2-prior", "stage3-decoder"]
    for s in stages:
        assert (out / s / "pytorch_lora_weights.safetensors").is_file(), s
        assert (out / s / "validation").is_dir()
    prov = json.loads((out / "stage2-prior" / "synthmed.json").read_text())
    assert prov["stage"] == "prior" and prov["decoder_lora_init"].endswith("stage1-decoder")
    prov3 = json.loads((out / "stage3-decoder" / "synthmed.json").read_text())
    assert prov3["prior_lora"].endswith("stage2-prior") and prov3["decoder_lora_init"].endswith("stage1-decoder")
    # Stage 3 continued stage 1's decoder LoRA, so its weights moved on from there.
    w1 = load_file(str(out / "stage1-decoder" / "pytorch_lora_weights.safetensors"))
    w3 = load_file(str(out / "stage3-decoder" / "pytorch_lora_weights.safetensors"))
    assert w1.keys() == w3.keys() and any(not (w1[k] == w3[k]).all() for k in w1)
    assert any("add_k_proj" in k for k in w1)
    proc = subprocess.run([sys.executable, str(HERE / "kandinsky_check.py"), *map(str, k22),
                           str(out / "stage2-prior"), str(out / "stage3-decoder")], capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["synthmed_imported"] is False
    assert report["prior_embed_change"] > 1e-4 and report["decoder_image_change"] > 1e-4, report


def _generate(k22, out: Path, *extra: str) -> list[np.ndarray]:
    prior, decoder = k22
    r = runner.invoke(app, ["generate", "--model", str(decoder), "--prior", str(prior), "--out", str(out),
                            "--prompt", "an axial brain MRI with a tumour", "--prompt", "a healthy brain MRI",
                            "--steps", "3", "--height", "32", "--width", "32", "--seed", "3", "--no-progress",
                            "--device", "cpu", *extra])
    assert r.exit_code == 0, r.output
    ds = ImageDataset(out)
    return [ds.image(rec).astype(np.float32) for rec in ds.records]


def test_generate_loads_prior_and_decoder_loras_onto_the_combined_pipeline(k22, staged, tmp_path):
    loras = ["--lora", str(staged / "stage2-prior"), "--lora", str(staged / "stage3-decoder" / LORA_FILE)]
    base = _generate(k22, tmp_path / "base")
    tuned = _generate(k22, tmp_path / "tuned", *loras)
    off = _generate(k22, tmp_path / "off", *loras, "--lora-scale", "0")
    assert len(base) == len(tuned) == 2 and base[0].shape == (32, 32, 3)
    assert all(np.abs(t - b).mean() > 0.5 for t, b in zip(tuned, base, strict=True))
    # Scale 0 switches both adapters off: the base images again.
    assert all(np.abs(o - b).max() <= 1 for o, b in zip(off, base, strict=True))
    row = ImageDataset(tmp_path / "tuned").records[0]
    assert row.source == f"generated:{Path(k22[1]).resolve()}"
    assert json.loads((tmp_path / "tuned" / "generate.json").read_text())["identity"]["prior"] == str(k22[0])


def test_generate_refuses_a_decoder_without_its_prior_a_wrong_prior_and_a_missing_lora(k22, tmp_path):
    prior, decoder = k22
    r = runner.invoke(app, ["generate", "--model", str(decoder), "--out", str(tmp_path / "a"), "--prompt", "x",
                            "--steps", "1", "--no-progress"])
    assert isinstance(r.exception, ConfigError) and "--prior" in str(r.exception)
    r = runner.invoke(app, ["generate", "--model", str(decoder), "--prior", str(decoder), "--out",
                            str(tmp_path / "b"), "--prompt", "x", "--steps", "1", "--no-progress"])
    assert isinstance(r.exception, ConfigError) and "not a KandinskyV22PriorPipeline" in str(r.exception)
    r = runner.invoke(app, ["generate", "--model", str(decoder), "--prior", str(prior), "--out", str(tmp_path / "c"),
                            "--prompt", "x", "--steps", "1", "--no-progress", "--lora", str(tmp_path / "nothing")])
    assert isinstance(r.exception, ConfigError) and "nothing" in str(r.exception) and LORA_FILE in str(r.exception)


def test_missing_lora_directory_is_reported(k22, ft_data, tmp_path):
    with pytest.raises(ConfigError, match="--prior-lora"):
        train_kandinsky(k_config(k22, ft_data, tmp_path / "k", stage="decoder", prior_lora=str(tmp_path / "none")))


@pytest.mark.slow
def test_kandinsky3_unet_lora_loads_with_vanilla_peft(ft_data, tmp_path):
    from synthmed.testing.pipelines import write_tiny_kandinsky3
    from synthmed.train.finetune.kandinsky3 import Kandinsky3TrainConfig, train_kandinsky3

    base = write_tiny_kandinsky3(tmp_path / "k3")
    out = train_kandinsky3(Kandinsky3TrainConfig(
        base=str(base), data=ft_data, out=tmp_path / "o", resolution=32, max_steps=3, progress=False,
        tensorboard=False, validation_steps=2, lora={"rank": 4}, optim={"batch_size": 2, "lr": 1e-2}))
    weights = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert weights and all(k.startswith("unet.") and "lora" in k for k in weights)
    assert (out / "validation" / "step-0000003.png").is_file()
    proc = subprocess.run([sys.executable, str(HERE / "kandinsky3_check.py"), str(base), str(out), "4"],
                          capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["synthmed_imported"] is False and report["unexpected"] == 0
    assert report["change"] > 1e-4, report
    # ... and synthmed generate puts it on the same base (peft injection from the file's metadata).
    images = {}
    for name, extra in (("base", []), ("tuned", ["--lora", str(out)]), ("off", ["--lora", str(out), "--lora-scale",
                                                                                "0"])):
        r = runner.invoke(app, ["generate", "--model", str(base), "--out", str(tmp_path / name), "--prompt",
                                "a brain mri", "--steps", "3", "--height", "128", "--width", "128", "--no-progress",
                                "--device", "cpu", *extra])
        assert r.exit_code == 0, r.output
        ds = ImageDataset(tmp_path / name)
        images[name] = ds.image(ds.records[0]).astype(np.float32)
    assert np.abs(images["tuned"] - images["base"]).mean() > 0.5
    assert np.abs(images["off"] - images["base"]).max() <= 1
