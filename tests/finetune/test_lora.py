"""LoRA fine-tuning of tiny SD 1.5 / SDXL pipelines: artifacts, vanilla loading, resume, learning, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from synthmed.errors import ConfigError, DataError
from synthmed.testing.pipelines import tiny_lora_config as lora_config
from synthmed.train.finetune import LoraTrainConfig, train_lora
from synthmed.train.finetune.families import detect_family
from synthmed.utils.configs import load_config

HERE = Path(__file__).parent


def vanilla(*args: str) -> dict:
    """Run vanilla_check.py in a fresh interpreter (no synthmed import) and parse its report."""
    out = subprocess.run([sys.executable, str(HERE / "vanilla_check.py"), *map(str, args)], capture_output=True,
                         text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                                                      "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["synthmed_imported"] is False
    return report


@pytest.fixture(scope="module")
def sd_lora(tiny_sd, ft_data, tmp_path_factory) -> Path:
    return train_lora(lora_config(tiny_sd, ft_data, tmp_path_factory.mktemp("lora") / "out",
                                  train_text_encoder=True, validation_every=3))


def test_sd15_lora_output_layout_and_provenance(sd_lora: Path):
    names = {p.name for p in sd_lora.iterdir()}
    assert {"pytorch_lora_weights.safetensors", "synthmed.json", "train_config.yaml", "checkpoints", "cache",
            "validation"} <= names
    assert sorted(p.name for p in (sd_lora / "validation").iterdir()) == ["step-0000003.png", "step-0000006.png"]
    weights = load_file(str(sd_lora / "pytorch_lora_weights.safetensors"))
    assert any(k.startswith("unet.") and "lora" in k for k in weights)
    assert any(k.startswith("text_encoder.") and "lora" in k for k in weights)  # the text encoder was trained
    with safe_open(str(sd_lora / "pytorch_lora_weights.safetensors"), framework="pt") as fh:
        meta = json.loads(fh.metadata()["lora_adapter_metadata"])
    assert meta["unet.r"] == 4
    prov = json.loads((sd_lora / "synthmed.json").read_text())
    assert prov["family"] == "sd15" and prov["result"]["steps"] == 6 and prov["data"]["converted_to_rgb"]
    # Checkpoints hold the trainable parameters only, not the frozen base.
    ckpt = load_file(str(sd_lora / "checkpoints" / "step-00000003" / "model.safetensors"))
    assert ckpt and all("lora" in k for k in ckpt)


def test_sd15_lora_loads_in_vanilla_diffusers_and_changes_the_image(tiny_sd, sd_lora):
    report = vanilla(tiny_sd, sd_lora)
    assert report["lora_change"] > 1e-3, report
    assert report["adapters"]["unet"] and report["adapters"]["text_encoder"]


def test_resume_continues_exactly(tiny_sd, ft_data, sd_lora, tmp_path):
    # A second run finds the step-3 checkpoint of the first and must end on the same weights.
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(sd_lora / "checkpoints" / "step-00000003", out / "checkpoints" / "step-00000003")
    shutil.copytree(sd_lora / "cache", out / "cache")
    cache_mtime = (out / "cache" / "latents.safetensors").stat().st_mtime_ns
    train_lora(lora_config(tiny_sd, ft_data, out, train_text_encoder=True, validation_every=3, resume=True))
    # The latents cached by the first run are reused, not encoded again.
    assert (out / "cache" / "latents.safetensors").stat().st_mtime_ns == cache_mtime
    a = load_file(str(sd_lora / "pytorch_lora_weights.safetensors"))
    b = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads((out / "synthmed.json").read_text())["result"]["resumed_from"] == 3
    # Resuming a finished run trains nothing and leaves its files alone.
    stamps = {f: (out / f).stat().st_mtime_ns for f in ("pytorch_lora_weights.safetensors", "synthmed.json")}
    train_lora(lora_config(tiny_sd, ft_data, out, train_text_encoder=True, validation_every=3, resume=True))
    assert {f: (out / f).stat().st_mtime_ns for f in stamps} == stamps


def test_sdxl_lora_with_both_text_encoders_loads_in_vanilla_diffusers(tiny_sdxl, ft_data, tmp_path):
    assert detect_family(str(tiny_sdxl)) == "sdxl"
    out = train_lora(lora_config(tiny_sdxl, ft_data, tmp_path / "xl", train_text_encoder=True, max_steps=4,
                                 lora={"rank": 2, "use_rslora": True}))
    weights = load_file(str(out / "pytorch_lora_weights.safetensors"))
    prefixes = {k.split(".")[0] for k in weights}
    assert prefixes == {"unet", "text_encoder", "text_encoder_2"}
    report = vanilla(tiny_sdxl, out)
    assert report["lora_change"] > 1e-3, report
    assert set(report["adapters"]) == {"unet", "text_encoder", "text_encoder_2"}


@pytest.mark.slow
def test_dora_adapters_are_saved_and_load(tiny_sd, ft_data, tmp_path):
    out = train_lora(lora_config(tiny_sd, ft_data, tmp_path / "dora", max_steps=2, lora={"use_dora": True}))
    weights = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert any("magnitude" in k for k in weights)
    assert vanilla(tiny_sd, out)["lora_change"] > 0


def test_loss_decreases_on_a_repeated_batch(tiny_sd, ft_data, tmp_path):
    from accelerate import Accelerator

    from synthmed.train.finetune.core import build_optimizer, make_denoise_loss_fn
    from synthmed.train.finetune.data import LatentCache, encode_latents, load_finetune_data
    from synthmed.train.finetune.families import SD15
    from synthmed.train.finetune.lora import build_lora_run

    cfg = lora_config(tiny_sd, ft_data, tmp_path / "o", train_text_encoder=True,
                     optim={"min_snr_gamma": None, "lr": 1e-2}, lora={"rank": 8})
    data = load_finetune_data(ft_data, resolution=32, split="train", use_paraphrases=True)
    acc = Accelerator(cpu=True)
    run = build_lora_run(cfg, acc, data, SD15())
    mean, std = encode_latents(run.vae, data.images, flip=False, device=torch.device("cpu"))
    latents = LatentCache(mean, std, float(run.vae.config.scaling_factor))
    loss_fn = make_denoise_loss_fn(latents, run.item_rows, run.prompts_fn, run.noise_scheduler, batch_size=4,
                                   grad_accum=1, min_snr_gamma=None, seed=0, stage="lora", rank=0, world=1,
                                   device=torch.device("cpu"))
    opt = build_optimizer([p for p in run.trainable.parameters() if p.requires_grad], cfg.optim)
    losses = []
    for _ in range(40):  # step 0, micro 0 every time: the same images, captions, noise and timesteps
        loss = loss_fn(run.trainable, 0, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0], losses  # LoRA on a random tiny UNet learns slowly, but surely


def test_bad_inputs_fail_before_loading_models(tiny_sd, ft_data, tmp_path):
    with pytest.raises(DataError, match="dataset directory not found"):
        train_lora(lora_config(tiny_sd, tmp_path / "nope", tmp_path / "o"))
    with pytest.raises(ConfigError, match="no such folder"):
        train_lora(lora_config(tmp_path / "missing-base", ft_data, tmp_path / "o"))
    (tmp_path / "notpipe").mkdir()
    with pytest.raises(ConfigError, match="model_index.json"):
        train_lora(lora_config(tmp_path / "notpipe", ft_data, tmp_path / "o"))
    with pytest.raises(ConfigError, match="family"):
        load_config(LoraTrainConfig, None, {"base": str(tiny_sd), "data": str(ft_data), "out": str(tmp_path),
                                            "family": "flux"})


def test_nan_loss_stops_with_a_training_error(tiny_sd, ft_data, tmp_path):
    from synthmed.train.finetune.core import run_finetune, start
    from synthmed.train.finetune.data import LatentCache, load_finetune_data
    from synthmed.train.finetune.families import SD15
    from synthmed.train.finetune.lora import build_lora_run
    from synthmed.train.ldm import TrainingError

    cfg = lora_config(tiny_sd, ft_data, tmp_path / "nan")
    data = load_finetune_data(ft_data, resolution=32, split="train", use_paraphrases=True)
    accelerator, data_hash = start(cfg, owned=())
    run = build_lora_run(cfg, accelerator, data, SD15())
    nan = torch.full((1, len(data), 4, 16, 16), float("nan"))
    run.latents = LatentCache(nan, torch.zeros_like(nan), 1.0)
    with pytest.raises(TrainingError, match="loss is nan at step 1"):
        run_finetune(accelerator, cfg, run, data_hash=data_hash, extra={})


def test_8bit_adam_without_bitsandbytes_is_a_config_error(monkeypatch):
    from synthmed.train.finetune.config import FinetuneOptimConfig
    from synthmed.train.finetune.core import build_optimizer

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install bitsandbytes"):
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], FinetuneOptimConfig(use_8bit_adam=True))


def test_grayscale_becomes_three_equal_channels_in_one_place():
    from synthmed.errors import DataError
    from synthmed.train.finetune.data import to_model_channels

    gray = torch.rand(2, 1, 8, 8) * 2 - 1
    rgb = to_model_channels(gray)
    assert rgb.shape == (2, 3, 8, 8) and all(torch.equal(rgb[:, c], gray[:, 0]) for c in range(3))
    assert to_model_channels(rgb) is rgb
    with pytest.raises(DataError, match="2-channel"):
        to_model_channels(torch.zeros(1, 2, 8, 8))
