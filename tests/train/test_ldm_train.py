"""train_ldm end to end on a tiny model: the pipeline folder, provenance, logs, errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from synthmed.errors import ConfigError
from synthmed.testing.ldm import tiny_train_config
from synthmed.train.ldm import train_ldm
from synthmed.utils.tmpfiles import current_umask

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_output_is_a_pipeline_folder_with_provenance(trained_ldm: Path):
    for part in ("model_index.json", "scheduler", "unet", "vae", "text_encoder", "tokenizer"):
        assert (trained_ldm / part).exists(), part
    index = json.loads((trained_ldm / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    vae_cfg = json.loads((trained_ldm / "vae" / "config.json").read_text())
    assert vae_cfg["in_channels"] == vae_cfg["out_channels"] == 1  # grayscale in and out
    assert vae_cfg["scaling_factor"] != 0.18215  # measured on the data
    prov = json.loads((trained_ldm / "synthmed.json").read_text())
    assert prov["text_encoder"]["class"] == "BertModel" and prov["text_encoder"]["use_attention_mask"]
    assert prov["data"]["channels"] == 1 and len(prov["data"]["hash"]) == 64
    assert prov["stages"]["unet"]["steps"] == 6 and prov["stages"]["autoencoder"]["steps"] == 4
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained_ldm / "README.md")
    assert card.data.pipeline_tag == "text-to-image" and "| steps | autoencoder 4, unet 6 |" in card.text
    # The training images' scanner noise is stored beside the pipeline for generate to re-synthesise.
    from synthmed.data.noise import read_noise_model

    noise = read_noise_model(trained_ldm)
    assert noise is not None and noise.n_images == 12 and len(noise.sigmas) == 12
    assert prov["acquisition_noise"] == noise.summary()
    assert list((trained_ldm / "logs").rglob("events.out.tfevents*")), "no TensorBoard events"
    assert (trained_ldm / "samples" / "autoencoder.png").is_file()
    assert (trained_ldm / "samples" / "unet-step-0000006.png").is_file()
    # Weights only ever as safetensors: no pickles anywhere in the model directory.
    assert not [p for p in trained_ldm.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    # Weights are as readable as every other file (safetensors writes 0600 on its own).
    weights = {stat.S_IMODE(p.stat().st_mode) for p in trained_ldm.rglob("*.safetensors")}
    assert weights == {0o666 & ~current_umask()}, sorted(oct(m) for m in weights)


def test_vanilla_diffusers_loads_and_runs_it_without_synthmed(trained_ldm: Path):
    script = textwrap.dedent(f"""
        import sys
        import torch
        from diffusers import DiffusionPipeline
        pipe = DiffusionPipeline.from_pretrained({str(trained_ldm)!r})
        pipe.set_progress_bar_config(disable=True)
        out = pipe("Axial T1 contrast-enhanced MRI. No tumour is visible.", num_inference_steps=2,
                   generator=torch.Generator().manual_seed(0), output_type="pil").images[0]
        assert out.mode == "L" and out.size == (32, 32), (out.mode, out.size)
        assert not [m for m in sys.modules if m.split(".")[0] == "synthmed"], "synthmed was imported"
        print("OK", type(pipe).__name__)
    """)
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd="/",
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK StableDiffusionPipeline" in res.stdout


def test_pipeline_prompt_embeddings_are_the_training_ones(trained_ldm: Path, tiny_text_encoder: Path):
    from diffusers import DiffusionPipeline

    from synthmed.models.text_encoders import encode_prompts, load_text_encoder

    pipe = DiffusionPipeline.from_pretrained(trained_ldm)
    prompts = ["Axial T1 contrast-enhanced MRI. A small round hyperintense tumour in the left hemisphere.", ""]
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(prompts, "cpu", 1, False)
    ours = encode_prompts(load_text_encoder(str(tiny_text_encoder), max_length=32), prompts)
    torch.testing.assert_close(embeds, ours)


def test_captions_longer_than_max_text_length_are_counted(tiny_text_encoder: Path):
    from synthmed.models.text_encoders import count_truncated, load_text_encoder

    encoder = load_text_encoder(str(tiny_text_encoder), max_length=8)
    short, long = "a tumour", "a small round hyperintense tumour in the left frontal lobe with oedema"
    assert count_truncated(encoder, [short, short, ""]) == 0
    assert count_truncated(encoder, [short, long, long]) == 1  # distinct captions
    assert count_truncated(load_text_encoder(str(tiny_text_encoder), max_length=32), [long]) == 0


def test_non_empty_out_needs_resume_and_completed_run_resumes_to_nothing(trained_ldm, disc_data, tiny_text_encoder):
    with pytest.raises(ConfigError, match="not empty; pass --resume"):
        train_ldm(tiny_train_config(disc_data, trained_ldm, tiny_text_encoder))
    before = (trained_ldm / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert train_ldm(tiny_train_config(disc_data, trained_ldm, tiny_text_encoder, resume=True)) == trained_ldm
    assert (trained_ldm / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == before


def test_time_budget_is_kept(disc_data, tiny_text_encoder, tmp_path):
    cfg = tiny_train_config(disc_data, tmp_path / "m", tiny_text_encoder, minutes=0.4, tensorboard=False,
                            autoencoder={"max_steps": None}, unet={"max_steps": None})
    t0 = time.monotonic()
    train_ldm(cfg)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.4 * 60 + 10, elapsed
    stages = json.loads((tmp_path / "m" / "synthmed.json").read_text())["stages"]
    assert stages["autoencoder"]["stopped_by"] == "time budget" and stages["autoencoder"]["steps"] > 3
    assert stages["unet"]["steps"] > 3


def test_cli_reports_a_missing_dataset_in_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "train", "ldm", "--data", str(tmp_path / "none"),
                          "--out", str(tmp_path / "o"), "--max-steps", "1"], capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "dataset directory not found" in res.stderr and "Traceback" not in res.stderr
