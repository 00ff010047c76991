"""Lesion-mask ControlNets on tiny SD 1.5 / SDXL / LDM pipelines: vanilla loading, resume, the start point, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthmed.data.dataset import read_records, write_records
from synthmed.data.imageio import save_png_atomic
from synthmed.errors import DataError
from synthmed.testing.ldm import write_disc_dataset
from synthmed.testing.pipelines import write_tiny_ldm
from synthmed.train.finetune.controlnet import ControlNetTrainConfig, controlnet_from_unet, train_controlnet

HERE = Path(__file__).parent


def cn_config(base, data, out, **overrides) -> ControlNetTrainConfig:
    cfg = {"base": str(base), "data": str(data), "out": str(out), "resolution": 32, "max_steps": 6,
           "optim": {"batch_size": 2, "lr": 1e-2, "warmup_steps": 1}, "checkpoint_every": 3, "progress": False,
           "validation_steps": 2, "tensorboard": False, **overrides}
    return ControlNetTrainConfig.model_validate(cfg)


def vanilla(base: Path, controlnet: Path, mask: Path) -> dict:
    """Run controlnet_check.py in a fresh interpreter (no synthmed import) and parse its report."""
    out = subprocess.run([sys.executable, str(HERE / "controlnet_check.py"), str(base), str(controlnet), str(mask)],
                         capture_output=True, text=True, timeout=300,
                         env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["synthmed_imported"] is False
    return report


@pytest.fixture(scope="module")
def mask_data(tmp_path_factory) -> Path:
    """8 captioned 32 px disc images with their lesion masks (read-only)."""
    return write_disc_dataset(tmp_path_factory.mktemp("cn") / "data", n=8, size=32, masks=True)


@pytest.fixture(scope="module")
def tiny_ldm(tmp_path_factory) -> Path:
    return write_tiny_ldm(tmp_path_factory.mktemp("cn"))


@pytest.fixture(scope="module")
def sd_controlnet(tiny_sd, mask_data, tmp_path_factory) -> Path:
    return train_controlnet(cn_config(tiny_sd, mask_data, tmp_path_factory.mktemp("cn") / "sd", validation_every=3))


def _lesion_mask_file(data: Path) -> Path:
    return next(data / r.mask_file_name for r in read_records(data) if r.findings.tumor_present)


def test_sd15_controlnet_layout_card_and_vanilla_loading(tiny_sd, sd_controlnet, mask_data):
    names = {p.name for p in sd_controlnet.iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "synthmed.json", "README.md", "checkpoints",
            "validation"} <= names
    assert not any(p.suffix in (".bin", ".pt", ".ckpt") for p in sd_controlnet.rglob("*"))
    prov = json.loads((sd_controlnet / "synthmed.json").read_text())
    assert prov["kind"] == "controlnet" and prov["result"]["steps"] == 6 and prov["family"] == "sd15"
    assert prov["rows_with_lesion"] + prov["rows_without_lesion"] == 8
    card = (sd_controlnet / "README.md").read_text()
    assert "controlnet" in card and "Conditioning image" in card
    # Checkpoints hold the ControlNet only, never the frozen base UNet.
    ckpt = load_file(str(sd_controlnet / "checkpoints" / "step-00000003" / "model.safetensors"))
    assert ckpt and all(k.startswith("controlnet.") for k in ckpt)
    report = vanilla(tiny_sd, sd_controlnet, _lesion_mask_file(mask_data))
    assert report["pipeline"] == "StableDiffusionControlNetPipeline"
    assert report["controlnet_change"] > 1e-4 and report["mask_change"] > 1e-4, report


def test_sdxl_and_ldm_controlnets_load_in_vanilla_diffusers(tiny_sdxl, tiny_ldm, mask_data, tmp_path):
    for name, base in (("xl", tiny_sdxl), ("ldm", tiny_ldm)):
        out = train_controlnet(cn_config(base, mask_data, tmp_path / name, max_steps=4))
        report = vanilla(base, out, _lesion_mask_file(mask_data))
        expected = "StableDiffusionXLControlNetPipeline" if name == "xl" else "StableDiffusionControlNetPipeline"
        assert report["pipeline"] == expected
        # The mask reaches the images (its zero-initialised encoder output has moved off zero).
        assert report["controlnet_change"] > 1e-4 and report["mask_change"] > 1e-6, (name, report)


def test_untrained_controlnet_leaves_the_base_prediction_unchanged(tiny_ldm):
    # Zero-initialised output convolutions: training starts from the base model's own images. The copy also
    # keeps the LDM's pooled-text attention heads (diffusers' from_unet would reset them to 64).
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_ldm, subfolder="unet")
    cn = controlnet_from_unet(unet, vae_downsample=2)
    assert cn.add_embedding.pool.num_heads == unet.add_embedding.pool.num_heads == 2
    torch.manual_seed(0)
    x, t, text = torch.randn(2, 4, 16, 16), torch.tensor([10, 500]), torch.randn(2, 5, 32)
    mask = torch.zeros(2, 3, 32, 32)
    mask[:, :, 8:16, 20:28] = 1
    down, mid = cn(x, t, encoder_hidden_states=text, controlnet_cond=mask, return_dict=False)
    with torch.no_grad():
        plain = unet(x, t, encoder_hidden_states=text).sample
        guided = unet(x, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid).sample
    assert torch.equal(plain, guided)


def test_resume_continues_exactly(tiny_sd, mask_data, sd_controlnet, tmp_path):
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(sd_controlnet / "checkpoints" / "step-00000003", out / "checkpoints" / "step-00000003")
    train_controlnet(cn_config(tiny_sd, mask_data, out, validation_every=3, resume=True))
    a = load_file(str(sd_controlnet / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(out / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "synthmed.json").read_text())["result"]["resumed_from"] == 3


def _copy(data: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bad"
    shutil.copytree(data, dst)
    return dst


def test_bad_masks_are_named_before_any_model_loads(tiny_sd, mask_data, tmp_path):
    bad = _copy(mask_data, tmp_path)
    target = _lesion_mask_file(bad)
    cases = {
        "not a binary mask": np.linspace(0, 255, 32 * 32).reshape(32, 32).astype(np.uint8),
        "is 32x32": np.zeros((16, 16), np.uint8),
        "is it inverted": np.full((32, 32), 255, np.uint8),
    }
    for message, array in cases.items():
        save_png_atomic(target, array)
        with pytest.raises(DataError, match=message) as err:
            train_controlnet(cn_config("/nonexistent/base", bad, tmp_path / "out"))
        assert target.name in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_rows_without_masks_are_refused_naming_one(tiny_sd, mask_data, tmp_path):
    bad = _copy(mask_data, tmp_path)
    records = read_records(bad)
    records[2] = records[2].model_copy(update={"mask_file_name": None})
    write_records(bad, records)
    with pytest.raises(DataError, match=records[2].file_name):
        train_controlnet(cn_config(tiny_sd, bad, tmp_path / "out"))


@pytest.mark.parametrize("which", ["ldm", "sd"])
def test_training_conditioning_is_what_the_pipeline_encodes(which, tiny_ldm, tiny_sd):
    # The LDM's BERT-style encoder is used with its attention mask by the pipeline; training must match.
    from diffusers import DiffusionPipeline

    from synthmed.train.finetune.core import DenoiseTrainable
    from synthmed.train.finetune.families import get_family

    base = str(tiny_ldm if which == "ldm" else tiny_sd)
    pipe = DiffusionPipeline.from_pretrained(base)
    trainable = DenoiseTrainable(get_family("auto", base), pipe.unet, [pipe.text_encoder], [pipe.tokenizer], 32,
                                 train_text=False)
    prompts = ["Axial T1 contrast-enhanced MRI. A large tumour in the left hemisphere.", "No tumour is visible."]
    expected = pipe.encode_prompt(prompts, "cpu", 1, False)[0]
    assert torch.allclose(trainable.condition(prompts).hidden_states, expected, atol=1e-6)


def test_random_mask_encoder_lets_the_mask_in_from_the_first_step(tiny_sd, mask_data, tmp_path):
    # mask_encoder_init=random: the mask encoder's output is not zero at the start, yet the base is unchanged
    # (the output convolutions are zero); after one step the zero-initialised variant's mask encoder is
    # still untouched while the random one has moved.
    from diffusers import ControlNetModel

    outs = {}
    for init in ("zero", "random"):
        out = train_controlnet(cn_config(tiny_sd, mask_data, tmp_path / init, max_steps=1, mask_encoder_init=init,
                                         validation_every=None))
        outs[init] = ControlNetModel.from_pretrained(out).controlnet_cond_embedding.conv_out.weight
    assert float(outs["zero"].abs().max()) == 0.0
    assert float(outs["random"].abs().mean()) > 1e-3
