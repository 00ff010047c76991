"""Generation on fine-tuned bases: LoRA + embeddings at once, LoRA scale, interpolation, composition, inpainting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.data.dataset import ImageDataset
from synthmed.errors import DataError
from synthmed.generate.extras import InpaintConfig, InterpolationConfig, inpaint, interpolate
from synthmed.testing.pipelines import tiny_lora_config
from synthmed.train.finetune import TextualInversionConfig, train_lora, train_textual_inversion

runner = CliRunner()


@pytest.fixture(scope="module")
def adapters(tiny_sd, ft_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    lora = train_lora(tiny_lora_config(tiny_sd, ft_data, root / "lora", max_steps=3, validation_steps=1))
    ti = train_textual_inversion(TextualInversionConfig.model_validate({
        "base": str(tiny_sd), "data": str(ft_data), "out": str(root / "ti"), "resolution": 32, "max_steps": 3,
        "concepts": [{"token": "<tumour>", "init_word": "tumour", "num_vectors": 4, "label": "tumor"},
                     {"token": "<healthy>", "init_word": "brain", "num_vectors": 4, "label": "no_tumor"}],
        "optim": {"batch_size": 2, "lr": 5e-2}, "progress": False, "validation_steps": 1, "tensorboard": False}))
    return lora, [str(ti / "learned_embeds-tumour.safetensors"), str(ti / "learned_embeds-healthy.safetensors")]


def _images(root) -> list[np.ndarray]:
    ds = ImageDataset(root)
    return [ds.image(r).astype(np.float32) for r in ds.records]


def test_lora_and_two_embeddings_at_once_composition_and_lora_scale(tiny_sd, adapters, tmp_path):
    lora, embeddings = adapters
    outs = {}
    for scale in ("0", "1"):
        out = tmp_path / f"s{scale}"
        r = runner.invoke(app, ["generate", "--model", str(tiny_sd), "--out", str(out), "--prompt",
                                "a medical image of <tumour> beside <healthy>", "--steps", "2", "--lora", str(lora),
                                "--lora-scale", scale, "--embedding", embeddings[0], "--embedding", embeddings[1],
                                "--no-progress", "--device", "cpu"])
        assert r.exit_code == 0, r.output
        outs[scale] = _images(out)[0]
    plain = tmp_path / "plain"
    r = runner.invoke(app, ["generate", "--model", str(tiny_sd), "--out", str(plain), "--prompt",
                            "a medical image of <tumour> beside <healthy>", "--steps", "2", "--embedding",
                            embeddings[0], "--embedding", embeddings[1], "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    # LoRA scale 0 is the base with the embeddings; scale 1 differs from it.
    assert np.abs(outs["0"] - _images(plain)[0]).max() <= 1
    assert np.abs(outs["1"] - outs["0"]).mean() > 0.5


def test_interpolation_endpoints_are_the_plain_prompts(tiny_sd, adapters, tmp_path):
    _, embeddings = adapters
    cfg = InterpolationConfig(model=str(tiny_sd), out=tmp_path / "i", prompt_from="a medical image of <healthy>",
                              prompt_to="a medical image of <tumour>", num_points=3, embeddings=embeddings, steps=2,
                              device="cpu")
    imgs = _images(interpolate(cfg))
    rows = ImageDataset(tmp_path / "i").records
    assert [r.model_extra["interpolation_weight"] for r in rows] == [0.0, 0.5, 1.0]
    # Weight 0 and 1 use exactly each prompt's own conditioning: plain generation with the same seed.
    for img, prompt in ((imgs[0], cfg.prompt_from), (imgs[2], cfg.prompt_to)):
        assert np.abs(img - _run_plain(tiny_sd, prompt, embeddings, cfg.seed)).max() <= 1
    assert np.abs(imgs[0] - imgs[2]).mean() > 0.5  # the two concepts differ
    assert np.abs(imgs[1] - imgs[0]).mean() > 0 and np.abs(imgs[1] - imgs[2]).mean() > 0


def _run_plain(base, prompt, embeddings, seed) -> np.ndarray:
    from synthmed.generate.pipeline import load_pipeline
    from synthmed.generate.run import _to_array

    pipe = load_pipeline(str(base), scheduler="dpm-solver++", embeddings=embeddings)
    img = pipe(prompt, num_inference_steps=2, guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(seed),
               output_type="np").images[0]
    return _to_array(np.asarray(img), 8).astype(np.float32)


def test_inpainting_changes_the_masked_region(tiny_sd, adapters, ft_data, tmp_path):
    from synthmed.data.imageio import save_png_atomic

    lora, _ = adapters
    image = ft_data / ImageDataset(ft_data).records[0].file_name  # a healthy 32 px slice
    masks = []
    for i, (y, x) in enumerate(((4, 4), (20, 20))):
        m = np.zeros((32, 32), dtype=np.uint8)
        m[y:y + 8, x:x + 8] = 255
        save_png_atomic(tmp_path / f"m{i}.png", m)
        masks.append(tmp_path / f"m{i}.png")
    out = inpaint(InpaintConfig(model=str(tiny_sd), out=tmp_path / "inp", prompt="a large tumour", image=image,
                                masks=masks, loras=[str(lora)], steps=3, device="cpu"))
    rows = ImageDataset(out).records
    assert len(rows) == 2 and all(r.mask_file_name for r in rows)
    a, b = _images(out)
    diff = np.abs(a - b).mean(-1)
    inside = np.zeros((32, 32), bool)
    inside[4:12, 4:12] = inside[20:28, 20:28] = True
    assert diff[inside].mean() > 2 * diff[~inside].mean()
    bad = np.zeros((16, 16), dtype=np.uint8)
    bad[:4, :4] = 255
    save_png_atomic(tmp_path / "bad.png", bad)
    with pytest.raises(DataError, match="mask is 16x16"):
        inpaint(InpaintConfig(model=str(tiny_sd), out=tmp_path / "x", prompt="p", image=image,
                              masks=[tmp_path / "bad.png"], device="cpu"))
