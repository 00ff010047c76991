"""``unet.condition: mask | mask+head``: a from-scratch LDM conditioned on text, the lesion mask (and the head outline),
saved as an inpainting pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmed.errors import DataError
from synthmed.testing.ldm import tiny_train_config
from synthmed.train.ldm import train_ldm


def test_saves_an_inpainting_pipeline_whose_unet_reads_the_mask_latent(mask_ldm: Path):
    from diffusers import UNet2DConditionModel

    from synthmed.models.ldm import is_mask_conditioned_model, mask_condition_of

    assert mask_condition_of(mask_ldm) == "mask+head"
    index = json.loads((mask_ldm / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    unet = UNet2DConditionModel.from_pretrained(mask_ldm / "unet")
    assert (unet.config.in_channels, unet.config.out_channels) == (9, 4)
    assert is_mask_conditioned_model(mask_ldm)
    assert (mask_ldm / "samples" / "unet-step-0000006.png").is_file()
    card = (mask_ldm / "README.md").read_text()
    assert "## Conditioning image" in card and "head outline grey" in card and "mask_image=" in card


def test_plain_ldm_is_not_mask_conditioned(trained_ldm: Path, tmp_path: Path):
    from synthmed.models.ldm import is_mask_conditioned_model

    assert not is_mask_conditioned_model(trained_ldm)
    assert not is_mask_conditioned_model(tmp_path)  # no synthmed.json at all


def test_training_input_is_what_the_inpainting_pipeline_feeds_its_unet(mask_ldm: Path, mask_data: Path):
    """The mask latent the trainer concatenates equals the one the vanilla pipeline builds from image=, mask_image=."""
    from diffusers import DiffusionPipeline

    from synthmed.models.ldm import mask_pictures, mask_pipeline_inputs
    from synthmed.train.ldm.data import head_masks, load_training_data
    from synthmed.train.ldm.unet import mask_condition

    pipe = DiffusionPipeline.from_pretrained(mask_ldm)
    data = load_training_data(mask_data, resolution=32)
    masks, heads = data.masks[:3], head_masks(data.images[:3])
    assert heads.mean() > 0.3 and (heads >= masks).all()  # the toy head holds its lesion
    seen = {}

    def spy(module, args, kwargs):
        seen["input"] = args[0].detach().clone()

    handle = pipe.unet.register_forward_pre_hook(spy, with_kwargs=True)
    inputs = mask_pipeline_inputs([m[0].numpy() > 0.5 for m in masks], [h[0].numpy() > 0.5 for h in heads],
                                  channels=1)
    pictures = mask_pictures(masks, heads, 1)
    assert pictures.unique().tolist() == pytest.approx([-1.0, 128 / 255 * 2 - 1, 1.0], abs=1e-6)  # air, head, lesion
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        pipe(["x"] * 3, num_inference_steps=1, guidance_scale=1.0, output_type="np",
             generator=[torch.Generator().manual_seed(i) for i in range(3)], **inputs)
        handle.remove()
        post = pipe.vae.encode(pictures).latent_dist
    scale = pipe.vae.config.scaling_factor
    extra = seen["input"][:, 4:]
    # The pipeline samples the posterior; the trainer's expected input is its mean, within a few stds.
    expected = mask_condition(post.mean * scale)
    assert extra.shape == expected.shape == (3, 5, 16, 16)
    assert torch.equal(extra[:, :1], torch.zeros_like(extra[:, :1]))
    assert ((extra[:, 1:] - expected[:, 1:]).abs() <= 6 * post.std * scale + 1e-5).all()
    # A lesion and an empty mask give different conditioning.
    assert masks[1].sum() > 0 and masks[0].sum() == 0
    assert (expected[1] - expected[0]).abs().max() > 1e-3


def test_vanilla_inpainting_pipeline_paints_around_the_mask_without_synthmed(mask_ldm: Path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import torch
        from PIL import Image
        from diffusers import StableDiffusionInpaintPipeline
        pipe = StableDiffusionInpaintPipeline.from_pretrained({str(mask_ldm)!r})
        pipe.set_progress_bar_config(disable=True)
        head = np.zeros((32, 32), np.uint8)
        head[3:29, 4:28] = 128          # grey head outline
        lesion = head.copy()
        lesion[8:16, 18:26] = 255       # white lesion
        def run(picture):
            return pipe("Axial T1 contrast-enhanced MRI. A small round tumour in the left hemisphere.",
                        image=Image.fromarray(picture), mask_image=Image.new("L", (32, 32), 0), num_inference_steps=2,
                        generator=torch.Generator().manual_seed(0), output_type="np").images[0]
        a, b = run(lesion), run(head)
        assert a.shape == (32, 32, 1), a.shape
        assert np.abs(a - b).max() > 0, "the mask changed nothing"
        assert not [m for m in sys.modules if m.split(".")[0] == "synthmed"], "synthmed was imported"
        print("OK")
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd="/",
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK" in res.stdout


def test_rows_without_masks_are_refused_before_training(disc_data: Path, tiny_text_encoder: Path, tmp_path: Path):
    out = tmp_path / "model"
    with pytest.raises(DataError, match="mask_file_name") as err:
        train_ldm(tiny_train_config(disc_data, out, tiny_text_encoder, unet={"condition": "mask+head"}))
    assert "metadata.jsonl" in str(err.value)
    assert not out.exists()


def test_generate_draws_masks_from_findings_with_a_mask_conditioned_model(mask_ldm: Path, tmp_path: Path):
    from synthmed.data.dataset import ImageDataset
    from synthmed.generate.config import GenerateConfig
    from synthmed.generate.run import generate

    cfg = GenerateConfig(model=str(mask_ldm), out=tmp_path / "gen", findings_grid="tumor_present=true,false;"
                         "hemisphere=left,right", steps=2, scheduler="euler-ancestral", progress=False,
                         masks_from_findings=True, height=32, width=32, batch_size=2)
    generate(cfg)
    ds = ImageDataset(tmp_path / "gen")
    rows = ds.records
    assert len(rows) >= 2 and all(r.mask_file_name for r in rows)
    for r in rows:
        mask = ds.mask(r) > 0
        assert mask.any() == bool(r.requested_findings.tumor_present)
    # Same seed, same images.
    again = generate(cfg.model_copy(update={"out": tmp_path / "again"}))
    first = ImageDataset(tmp_path / "gen")
    second = ImageDataset(again)
    for a, b in zip(first.records, second.records, strict=True):
        assert np.array_equal(first.image(a), second.image(b))


def test_generate_refuses_a_mask_conditioned_model_without_masks(mask_ldm: Path, tmp_path: Path):
    from pydantic import ValidationError

    from synthmed.generate.config import GenerateConfig

    with pytest.raises(ValidationError, match="needs masks"):
        GenerateConfig(model=str(mask_ldm), out=tmp_path / "gen", prompts=["x"])
    with pytest.raises(ValidationError, match="mask-conditioned itself"):
        GenerateConfig(model=str(mask_ldm), out=tmp_path / "gen", prompts=["x"], controlnet=str(tmp_path),
                       masks_from_findings=True)


def test_generate_from_a_dataset_finds_each_rows_head_and_refuses_bare_mask_folders(mask_ldm: Path, mask_data: Path,
                                                                                    tmp_path: Path):
    import shutil

    from synthmed.data.dataset import ImageDataset
    from synthmed.errors import ConfigError
    from synthmed.generate.config import GenerateConfig
    from synthmed.generate.run import generate

    ds = ImageDataset(generate(GenerateConfig(model=str(mask_ldm), out=tmp_path / "gen", masks=mask_data, steps=2,
                                              progress=False, batch_size=4)))
    source = ImageDataset(mask_data)
    assert len(ds) == len(source)
    for got, src in zip(ds.records, source.records, strict=True):
        assert np.array_equal(ds.mask(got) > 0, source.mask(src) > 0)
    folder = tmp_path / "masks"
    folder.mkdir()
    shutil.copy(mask_data / source.records[1].mask_file_name, folder / "a.png")
    with pytest.raises(ConfigError, match="head outline"):
        generate(GenerateConfig(model=str(mask_ldm), out=tmp_path / "bare", masks=folder, prompts=["x"], steps=2,
                                progress=False))
    assert not (tmp_path / "bare").exists()


def test_shipped_config_is_the_demo_model_with_mask_conditioning(tmp_path: Path):
    from synthmed.pipeline.config import load_pipeline_config
    from synthmed.pipeline.demo import DemoConfig, demo_pipeline
    from synthmed.train.ldm import LDMTrainConfig
    from synthmed.utils.configs import deep_merge, load_config

    shipped = load_config(LDMTrainConfig, Path(__file__).parents[2] / "configs" / "ldm-mask-phantom.yaml",
                          {"data": str(tmp_path), "out": str(tmp_path / "m")})
    demo = {s.name: s for s in load_pipeline_config(data=demo_pipeline(DemoConfig(out=tmp_path / "d"))).stages}
    settings = deep_merge(demo["train_ldm"].settings, {"data": str(tmp_path), "out": str(tmp_path / "m"),
                                                       "unet": {"condition": "mask+head"}, "tensorboard": True})
    assert shipped.unet.condition == "mask+head"
    assert shipped.model_dump(exclude={"tensorboard"}) == LDMTrainConfig.model_validate(settings).model_dump(
        exclude={"tensorboard"})


def test_a_lesion_only_model_takes_bare_mask_folders(mask_data: Path, tiny_text_encoder: Path, tmp_path: Path):
    """``condition: mask`` draws its own head: its picture has no grey, and a folder of lesion masks is enough."""
    import shutil

    from synthmed.data.dataset import ImageDataset
    from synthmed.generate.config import GenerateConfig
    from synthmed.generate.run import generate
    from synthmed.models.ldm import condition_picture, mask_condition_of, mask_pipeline_inputs

    model = train_ldm(tiny_train_config(mask_data, tmp_path / "model", tiny_text_encoder, unet={"condition": "mask"}))
    assert mask_condition_of(model) == "mask"
    lesion = np.zeros((8, 8), bool)
    lesion[2:4, 2:4] = True
    assert set(np.unique(condition_picture(lesion)).tolist()) == {0, 255}
    picture = np.asarray(mask_pipeline_inputs([lesion], None, channels=1)["image"][0])
    assert np.array_equal(picture, condition_picture(lesion))
    source = ImageDataset(mask_data)
    folder = tmp_path / "masks"
    folder.mkdir()
    for i in (0, 1):
        shutil.copy(mask_data / source.records[i].mask_file_name, folder / f"m{i}.png")
    out = generate(GenerateConfig(model=str(model), out=tmp_path / "gen", masks=folder, prompts=["x"], steps=2,
                                  progress=False))
    assert len(ImageDataset(out)) == 2
