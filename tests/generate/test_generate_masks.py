"""Mask-conditioned generation: --controlnet with --masks (folder or dataset) or --masks-from-findings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import save_png_atomic
from synthmed.data.phantom.masks import lesion_mask_for
from synthmed.errors import ConfigError, DataError
from synthmed.generate import GenerateConfig, generate, image_seed
from synthmed.testing.ldm import write_disc_dataset


@pytest.fixture(scope="module")
def controlnet(tiny_pipeline, tmp_path_factory) -> Path:
    """A ControlNet for the tiny pipeline whose zero convolutions are given random weights (so masks matter)."""
    from diffusers import UNet2DConditionModel

    from synthmed.train.finetune.controlnet import controlnet_from_unet

    unet = UNet2DConditionModel.from_pretrained(tiny_pipeline, subfolder="unet")
    cn = controlnet_from_unet(unet, vae_downsample=2)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in cn.named_parameters():
            if "controlnet_" in name or "conv_out" in name:
                p.normal_(0, 0.3)
    out = tmp_path_factory.mktemp("cn") / "controlnet"
    cn.save_pretrained(out, safe_serialization=True)
    return out


def _cfg(model, controlnet, out, **kw) -> GenerateConfig:
    base = dict(model=str(model), controlnet=str(controlnet), out=out, steps=3, batch_size=4, progress=False,
                guidance_scale=2.0)
    base.update(kw)
    return GenerateConfig(**base)


def test_masks_from_findings_rows_carry_the_mask_drawn_for_their_findings(tiny_pipeline, controlnet, tmp_path):
    cfg = _cfg(tiny_pipeline, controlnet, tmp_path / "g", findings_grid="presence x hemisphere",
               masks_from_findings=True)
    ds = ImageDataset(generate(cfg))
    assert len(ds) == 4
    for i, rec in enumerate(ds.records):
        mask = ds.mask(rec)
        assert rec.mask_file_name == f"masks/gen_{i:06d}.png" and mask.shape == (32, 32)
        expected = lesion_mask_for(rec.requested_findings, size=32, seed=image_seed(0, i))
        assert np.array_equal(mask, expected)
        assert mask.any() == rec.requested_findings.tumor_present  # an empty mask for a healthy prompt
        assert rec.controlnet == str(controlnet.resolve()) and rec.spacing_mm == pytest.approx(220 / 32)
    # Same seed, same image; a rerun resumes (nothing to do) and a new run in another folder matches bit for bit.
    again = ImageDataset(generate(cfg.model_copy(update={"out": tmp_path / "h"})))
    for a, b in zip(ds.records, again.records, strict=True):
        assert np.array_equal(ds.image(a), again.image(b))


def test_the_mask_changes_the_image(tiny_pipeline, controlnet, tmp_path):
    lesion = np.zeros((32, 32), np.uint8)
    lesion[6:16, 18:28] = 255
    images = []
    for name, mask in (("empty", np.zeros((32, 32), np.uint8)), ("lesion", lesion)):
        folder = tmp_path / name
        folder.mkdir()
        save_png_atomic(folder / "m.png", mask)
        ds = ImageDataset(generate(_cfg(tiny_pipeline, controlnet, tmp_path / f"g-{name}", masks=folder,
                                        prompts=["A tumour."], seed=3)))
        (rec,) = ds.records
        assert rec.prompt == "A tumour." and bool(ds.mask(rec).any()) == (name == "lesion")
        images.append(ds.image(rec).astype(float))
    # Same prompt, same seed: only the mask differs.
    assert np.abs(images[0] - images[1]).mean() > 0.5


def test_a_masks_dataset_gives_prompts_and_masks(tiny_pipeline, controlnet, tmp_path):
    data = write_disc_dataset(tmp_path / "real", n=3, size=32, masks=True)
    out = generate(_cfg(tiny_pipeline, controlnet, tmp_path / "g", masks=data))
    src, gen = ImageDataset(data), ImageDataset(out)
    assert [r.prompt for r in gen.records] == [r.text for r in src.records]
    for s, g in zip(src.records, gen.records, strict=True):
        assert np.array_equal(src.mask(s), gen.mask(g))
        assert g.requested_findings == s.findings


def test_prompt_and_mask_counts_must_pair(tiny_pipeline, controlnet, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        save_png_atomic(folder / name, np.zeros((32, 32), np.uint8))
    with pytest.raises(ConfigError, match="3 masks but 2 prompts"):
        generate(_cfg(tiny_pipeline, controlnet, tmp_path / "g", masks=folder, prompts=["x", "y"]))


def test_bad_masks_are_named_before_the_model_loads(controlnet, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    save_png_atomic(folder / "a.png", np.zeros((32, 32), np.uint8))
    save_png_atomic(folder / "b.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match="b.png"):
        generate(_cfg("/no/such/model", controlnet, tmp_path / "g", masks=folder, prompts=["x"]))
    save_png_atomic(folder / "b.png", np.full((32, 32), 255, np.uint8))
    with pytest.raises(DataError, match="inverted") as err:
        generate(_cfg("/no/such/model", controlnet, tmp_path / "g", masks=folder, prompts=["x"]))
    assert "b.png" in str(err.value)
    assert not (tmp_path / "g").exists()


def test_conditioning_options_are_checked():
    with pytest.raises(ValueError, match="need a model that reads them: a controlnet"):
        GenerateConfig(model="m", out="o", prompts=["a"], masks_from_findings=True)
    with pytest.raises(ValueError, match="needs masks"):
        GenerateConfig(model="m", out="o", prompts=["a"], controlnet="c")
    with pytest.raises(ValueError, match="not both"):
        GenerateConfig(model="m", out="o", prompts=["a"], controlnet="c", masks="d", masks_from_findings=True)


def test_masks_from_findings_needs_findings(tiny_pipeline, controlnet, tmp_path):
    with pytest.raises(ConfigError, match="states none"):
        generate(_cfg(tiny_pipeline, controlnet, tmp_path / "g", prompts=["a pretty picture"],
                      masks_from_findings=True))


def test_cli_draws_masks_from_findings(tiny_pipeline, controlnet, tmp_path):
    from typer.testing import CliRunner

    from synthmed.cli.main import app

    out = tmp_path / "g"
    result = CliRunner().invoke(app, ["generate", "--model", str(tiny_pipeline), "--controlnet", str(controlnet),
                                      "--masks-from-findings", "--findings-grid", "presence=present x hemisphere",
                                      "--steps", "2", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert all(r.mask_file_name for r in ImageDataset(out).records)
    shutil.rmtree(out)


def test_sharded_mask_conditioned_run_merges_to_the_one_process_dataset(tiny_pipeline, controlnet, tmp_path):
    from synthmed.generate import merge

    kw = dict(findings_grid="presence x hemisphere", masks_from_findings=True, batch_size=2)
    whole = ImageDataset(generate(_cfg(tiny_pipeline, controlnet, tmp_path / "one", **kw)))
    for shard in (0, 1):
        generate(_cfg(tiny_pipeline, controlnet, tmp_path / "sharded", num_shards=2, shard=shard, **kw))
    merged = ImageDataset(merge(tmp_path / "sharded"))
    assert [r.file_name for r in merged.records] == [r.file_name for r in whole.records]
    for a, b in zip(whole.records, merged.records, strict=True):
        assert np.array_equal(whole.image(a), merged.image(b)) and np.array_equal(whole.mask(a), merged.mask(b))
        assert b.mask_file_name == a.mask_file_name
