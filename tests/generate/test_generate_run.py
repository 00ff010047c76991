"""generate(): dataset rows, bit-for-bit reproducibility, resume, batch-size independence, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthmed.data.dataset import ImageDataset
from synthmed.errors import ConfigError
from synthmed.generate import GenerateConfig, generate, image_seed
from synthmed.generate.schedulers import make_scheduler, scheduler_names


def _cfg(model, out, **kw) -> GenerateConfig:
    base = dict(model=str(model), out=out, findings_grid="presence x hemisphere", n_per_prompt=2, steps=3,
                batch_size=4, progress=False, guidance_scale=2.0)
    base.update(kw)
    return GenerateConfig(**base)


def _images(root) -> dict[str, np.ndarray]:
    ds = ImageDataset(root)
    return {r.file_name: ds.image(r) for r in ds.records}


def test_rows_carry_prompt_findings_and_settings(tiny_pipeline, tmp_path):
    out = generate(_cfg(tiny_pipeline, tmp_path / "g"))
    ds = ImageDataset(out)
    assert len(ds) == 4 * 2  # (left, right, absent, absent) x 2
    rec = ds.records[0]
    assert rec.prompt == rec.text == "Axial T1 contrast-enhanced MRI. A tumour in the left hemisphere."
    assert rec.requested_findings.hemisphere == "left"
    assert (rec.steps, rec.guidance_scale, rec.scheduler) == (3, 2.0, "dpm-solver++")
    assert rec.seed == image_seed(0, 0)
    assert rec.model_id == str(tiny_pipeline.resolve()) and rec.source == f"generated:{rec.model_id}"
    assert rec.label == "tumor" and ds.records[-1].label == "no_tumor"
    img = ds.image(rec)
    assert img.shape == (32, 32) and img.dtype == np.uint8  # grayscale stays grayscale
    assert json.loads((out / "synthmed.json").read_text())["num_images"] == 8


def test_same_seed_same_bits_and_resume_skips_written_images(tiny_pipeline, tmp_path):
    first = _images(generate(_cfg(tiny_pipeline, tmp_path / "a")))
    # Interrupt a second run after 5 of 8 rows (as a crash would leave it) and rerun it.
    out = tmp_path / "b"
    generate(_cfg(tiny_pipeline, out))
    meta = out / "metadata.jsonl"
    lines = meta.read_text().splitlines(keepends=True)
    meta.write_text("".join(lines[:5]))
    kept = {n: (out / n).stat().st_mtime_ns for n in list(first)[:5]}
    generate(_cfg(tiny_pipeline, out))
    again = _images(out)
    assert list(again) == list(first)
    for name, img in first.items():
        assert np.array_equal(img, again[name]), name
    assert all((out / n).stat().st_mtime_ns == t for n, t in kept.items())  # not rewritten


@pytest.mark.parametrize("scheduler", ["dpm-solver++", "euler-ancestral", "dpm-solver++-sde"])
def test_batch_size_does_not_change_which_image_a_seed_gives(tiny_pipeline, tmp_path, scheduler):
    # The stochastic samplers draw fresh noise at every step; it must come from each image's own generator.
    a = _images(generate(_cfg(tiny_pipeline, tmp_path / "a", batch_size=8, scheduler=scheduler)))
    b = _images(generate(_cfg(tiny_pipeline, tmp_path / "b", batch_size=3, scheduler=scheduler)))
    for name in a:
        diff = np.abs(a[name].astype(int) - b[name].astype(int))
        # Float reduction order differs with the batch shape: at most a rare 1-level change.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, name


def test_other_settings_in_the_same_out_dir_are_refused(tiny_pipeline, tmp_path):
    generate(_cfg(tiny_pipeline, tmp_path / "g"))
    with pytest.raises(ConfigError, match=r"other settings \(differs in: steps\)"):
        generate(_cfg(tiny_pipeline, tmp_path / "g", steps=4))


def test_a_run_recorded_before_a_setting_existed_still_resumes(tiny_pipeline, tmp_path):
    # generate.json written before ``prior`` was a setting: its absence means the default, None.
    out = generate(_cfg(tiny_pipeline, tmp_path / "g"))
    record = json.loads((out / "generate.json").read_text())
    del record["identity"]["prior"]
    (out / "generate.json").write_text(json.dumps(record))
    assert generate(_cfg(tiny_pipeline, tmp_path / "g")) == out


def test_unknown_scheduler_fails_before_loading_the_model(tmp_path):
    valid = r"valid names: ddpm, ddim, dpm-solver\+\+, dpm-solver\+\+-sde, euler"
    with pytest.raises(ConfigError, match=rf"unknown scheduler 'heun'; {valid}"):
        generate(_cfg(tmp_path / "no-model", tmp_path / "g", scheduler="heun"))
    assert not (tmp_path / "g").exists()


def test_missing_model_is_named_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="--model .*no-model.*no such folder"):
        generate(_cfg(tmp_path / "no-model", tmp_path / "g"))
    assert not (tmp_path / "g").exists()


def test_exactly_one_prompt_source():
    with pytest.raises(ValueError, match="exactly one prompt source"):
        GenerateConfig(model="m", out="o")
    with pytest.raises(ValueError, match="prompts, findings_grid"):
        GenerateConfig(model="m", out="o", prompts=["a"], findings_grid="default")


@pytest.mark.parametrize("name", scheduler_names())
def test_every_scheduler_samples(tiny_pipeline, tmp_path, name):
    from diffusers import DDPMScheduler

    sched = make_scheduler(name, DDPMScheduler.from_pretrained(tiny_pipeline / "scheduler").config)
    assert sched.config.num_train_timesteps == 1000
    if name in ("ddpm", "ddim", "dpm-solver++", "dpm-solver++-sde", "euler", "euler-ancestral"):
        out = generate(_cfg(tiny_pipeline, tmp_path / name, scheduler=name, findings_grid=None,
                            prompts=["Axial T1 contrast-enhanced MRI. No tumour is visible."], n_per_prompt=1))
        assert len(ImageDataset(out)) == 1


def test_lora_and_embedding_are_loaded(tiny_pipeline, tmp_path):
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline / "unet")
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(
        tmp_path / "lora", unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        safe_serialization=True)
    hidden = json.loads((tiny_pipeline / "text_encoder" / "config.json").read_text())["hidden_size"]
    save_file({"<glioma-x>": torch.randn(1, hidden)}, str(tmp_path / "learned_embeds.safetensors"))
    out = generate(_cfg(tiny_pipeline, tmp_path / "g", findings_grid=None, prompts=["a <glioma-x> tumour"],
                        loras=[str(tmp_path / "lora")], embeddings=[str(tmp_path / "learned_embeds.safetensors")],
                        n_per_prompt=1))
    assert ImageDataset(out).records[0].prompt == "a <glioma-x> tumour"
    with pytest.raises(ConfigError, match="--lora .*cannot load"):
        generate(_cfg(tiny_pipeline, tmp_path / "h", loras=[str(tmp_path / "missing")]))


def test_cli_generates(tiny_pipeline, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "synthmed.cli.main", "generate", "--model", str(tiny_pipeline), "--prompt",
           "Axial T1 contrast-enhanced MRI. No tumour is visible.", "--steps", "2", "--scheduler", "ddim",
           "--n-per-prompt", "2", "--no-progress", "--out", str(tmp_path / "g")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r.scheduler for r in ImageDataset(tmp_path / "g").records] == ["ddim", "ddim"]


def test_scanner_noise_is_resynthesised_from_the_models_noise_model(tiny_pipeline, tmp_path):
    import shutil

    from synthmed.data.noise import NOISE_MODEL_FILE, RicianNoise, write_noise_model

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline, model)
    clean = _images(generate(_cfg(model, tmp_path / "clean")))
    noise = RicianNoise(sigmas=[0.02, 0.04], n_images=2)
    write_noise_model(model, noise)
    out = generate(_cfg(model, tmp_path / "noisy"))
    noisy = _images(out)
    rows = {r.file_name: r for r in ImageDataset(out).records}
    for name, img in noisy.items():
        row = rows[name]
        expected, sigma = noise.apply(clean[name].astype(np.float32) / 255, row.seed)
        assert row.acquisition_noise_sigma == sigma
        # The noise is drawn on the float image before quantisation: within one 8-bit level of re-noising the
        # quantised clean image with the same seed.
        assert np.abs(img.astype(int) - np.rint(expected * 255)).max() <= 2, name
        assert not np.array_equal(img, clean[name])
    again = _images(generate(_cfg(model, tmp_path / "noisy2")))
    assert all(np.array_equal(again[n], noisy[n]) for n in noisy)  # the image's seed decides its noise
    off = _images(generate(_cfg(model, tmp_path / "off", acquisition_noise="off")))
    assert all(np.array_equal(off[n], clean[n]) for n in clean)
    # A noise model added after a run started changes its images: resuming is refused.
    (model / NOISE_MODEL_FILE).unlink()
    with pytest.raises(ConfigError, match="noise_model"):
        generate(_cfg(model, out))
