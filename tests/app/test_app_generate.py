"""The Generate tab's callbacks on a tiny real pipeline and the shipped judge."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from synthmed.app import generate as G
from synthmed.app.models import AppConfig, AppModels
from synthmed.data.dataset import ImageDataset
from synthmed.errors import ConfigError
from synthmed.findings.render import render_text
from synthmed.findings.schema import BrainMRIFindings
from synthmed.generate import GenerateConfig, generate
from synthmed.generate.run import image_seed


def test_form_to_findings_and_prompt():
    f = G.findings_from_form(True, "left", "frontal", "large", G.ANY, "ring-enhancing", "yes", G.ANY)
    assert (f.hemisphere, f.lobe, f.size_category, f.shape, f.intensity, f.edema, f.orientation) == (
        "left", "frontal", "large", None, "ring-enhancing", True, None)
    assert G.prompt_for(f) == render_text(f) and "left frontal" in G.prompt_for(f)
    assert G.findings_from_form(True, edema="no").edema is False
    none = G.findings_from_form(False, "left", "frontal", "large")
    assert none == BrainMRIFindings(tumor_present=False)
    with pytest.raises(ConfigError, match="hemisphere"):
        G.findings_from_form(True, hemisphere="middle")


def test_disagreements_name_what_differs():
    asked = BrainMRIFindings(tumor_present=True, hemisphere="left", lobe="frontal")
    read = BrainMRIFindings(tumor_present=True, hemisphere="left", lobe="parietal", shape="round")
    assert G.disagreements(asked, read, ("hemisphere", "lobe", "shape")) == ["lobe (asked frontal, read parietal)"]
    assert G.disagreements(asked, read, ("hemisphere",)) == []
    assert G.disagreements(asked, BrainMRIFindings(tumor_present=False), ("lobe",)) == [
        "tumour presence (asked tumour, read none)"]
    assert G.disagreements(BrainMRIFindings(tumor_present=False), read, ("lobe",)) == [
        "tumour presence (asked none, read tumour)"]


def test_generated_images_are_the_cli_images_and_are_read_by_the_judge(models, app_sd, tmp_path):
    f = G.findings_from_form(True, "right", "occipital")
    prompt = G.prompt_for(f)
    seen = []
    images = G.generate_images(models, prompt, f, n=3, seed=5, steps=2, guidance_scale=3.0, scheduler="ddim",
                               progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [g.seed for g in images] == [image_seed(5, i) for i in range(3)]
    for g in images:
        assert g.read is not None and g.requested == f and g.image.dtype == np.uint8
        assert all("(asked" in d for d in g.disagreements)
        assert g.caption(0).startswith("#1 · ") and f"seed {g.seed}" in g.caption(0)
    # the same request through `synthmed generate` (one image per batch) gives the same pixels
    out = generate(GenerateConfig(model=str(app_sd), prompts=[prompt], n_per_prompt=3, seed=5, steps=2,
                                  guidance_scale=3.0, scheduler="ddim", batch_size=1, out=tmp_path / "cli",
                                  progress=False, device="cpu"))
    ds = ImageDataset(out)
    for g, rec in zip(images, ds.records, strict=True):
        assert rec.seed == g.seed
        np.testing.assert_array_equal(ds.image(rec), g.image)
    # another sampler in between (the app keeps one pipeline and switches its sampler) changes nothing after
    G.generate_images(models, prompt, None, n=1, seed=5, steps=2, guidance_scale=3.0, scheduler="euler-ancestral")
    again = G.generate_images(models, prompt, None, n=1, seed=5, steps=2, guidance_scale=3.0, scheduler="ddim")
    np.testing.assert_array_equal(again[0].image, images[0].image)
    assert again[0].disagreements == [] and "as asked" not in again[0].caption(0)  # an edited prompt: no request


def test_generate_refuses_bad_requests(models):
    for kwargs, match in (({"n": 0}, "1-16"), ({"n": 17}, "1-16"), ({"steps": 0}, "steps"),
                          ({"scheduler": "nope"}, "nope")):
        args = {"n": 1, "seed": 0, "steps": 2, "guidance_scale": 1.0, "scheduler": "ddim", **kwargs}
        with pytest.raises(ConfigError, match=match):
            G.generate_images(models, "a scan", None, **args)
    with pytest.raises(ConfigError, match="prompt is empty"):
        G.generate_images(models, "  ", None, n=1, seed=0, steps=2, guidance_scale=1.0, scheduler="ddim")
    with pytest.raises(ConfigError, match="--model"):
        G.generate_images(AppModels(AppConfig()), "a scan", None, n=1, seed=0, steps=2, guidance_scale=1.0,
                          scheduler="ddim")


def test_export_writes_a_dataset_of_the_chosen_images(models, tmp_path):
    f = G.findings_from_form(False)
    images = G.generate_images(models, G.prompt_for(f), f, n=3, seed=1, steps=2, guidance_scale=1.0,
                               scheduler="ddim")
    archive = G.export_dataset(images, [2, 0], model_id="tiny")
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path)
    ds = ImageDataset(tmp_path / "synthmed-generated")
    assert [r.seed for r in ds.records] == [images[0].seed, images[2].seed]
    for rec, g in zip(ds.records, (images[0], images[2]), strict=True):
        assert rec.requested_findings == f and rec.prompt == g.prompt and rec.model_id == "tiny"
        assert rec.label == "no_tumor" and (rec.steps, rec.guidance_scale, rec.scheduler) == (2, 1.0, "ddim")
        np.testing.assert_array_equal(ds.image(rec), g.image)
    with pytest.raises(ConfigError, match="no image chosen"):
        G.export_dataset(images, [], model_id="tiny")


def test_a_mask_conditioned_model_draws_each_image_around_the_mask_generate_draws(mask_ldm):
    models = AppModels(AppConfig(model=str(mask_ldm), device="cpu"))
    f = G.findings_from_form(True, "left")
    images = G.generate_images(models, G.prompt_for(f), f, n=2, seed=3, steps=2, guidance_scale=2.0,
                               scheduler="euler-ancestral")
    from synthmed.data.phantom.masks import lesion_mask_for

    for g in images:
        assert g.mask is not None and g.mask.any()
        assert np.array_equal(g.mask, lesion_mask_for(f, size=32, seed=g.seed))
        shown = g.shown()
        assert shown.shape == (32, 32, 3) and (shown[g.mask] != g.image[g.mask][:, None]).any()  # outlined in red
    archive = G.export_dataset(images, [0], model_id=str(mask_ldm))
    with zipfile.ZipFile(archive) as z:
        assert any(n.startswith("synthmed-generated/masks/") for n in z.namelist())
    with pytest.raises(ConfigError, match="form's findings"):
        G.generate_images(models, "an edited prompt", None, n=1, seed=0, steps=2, guidance_scale=2.0,
                          scheduler="ddim")
