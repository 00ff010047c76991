"""A trained autoencoder given to `train ldm` (a folder or builtin:<name>): stage 1 is skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from synthmed.errors import ConfigError, DataError
from synthmed.models.ldm import AUTOENCODER_WEIGHTS, AutoencoderConfig, autoencoder_folder, build_autoencoder
from synthmed.testing.ldm import tiny_train_config
from synthmed.train.ldm import train_ldm


def test_a_given_autoencoder_is_used_unchanged_and_recorded(trained_ldm, disc_data, tiny_text_encoder, tmp_path):
    out = tmp_path / "m"
    train_ldm(tiny_train_config(disc_data, out, tiny_text_encoder, tensorboard=False,
                                pretrained_autoencoder=str(trained_ldm)))  # a pipeline folder: its vae/ is used
    given = load_file(str(trained_ldm / "vae" / AUTOENCODER_WEIGHTS))
    saved = load_file(str(out / "vae" / AUTOENCODER_WEIGHTS))
    assert given.keys() == saved.keys() and all(torch.equal(given[k], saved[k]) for k in given)
    stages = json.loads((out / "synthmed.json").read_text())["stages"]
    assert stages["autoencoder"]["pretrained"] == str(trained_ldm)
    assert "steps" not in stages["autoencoder"] and stages["unet"]["steps"] == 6
    assert not (out / "checkpoints" / "autoencoder").exists()


def test_resuming_with_another_autoencoder_is_refused(trained_ldm, disc_data, tiny_text_encoder, tmp_path):
    other = tmp_path / "other_vae"
    torch.manual_seed(5)
    build_autoencoder(AutoencoderConfig(block_out_channels=[8, 8], norm_num_groups=4), 1).save_pretrained(other)
    out = tmp_path / "m"
    cfg = tiny_train_config(disc_data, out, tiny_text_encoder, tensorboard=False,
                            pretrained_autoencoder=str(trained_ldm), unet={"max_steps": 2})
    train_ldm(cfg)
    (out / "train_state.json").write_text(json.dumps(
        {**json.loads((out / "train_state.json").read_text()), "complete": False}))
    with pytest.raises(ConfigError, match="started with another pretrained autoencoder"):
        train_ldm(cfg.model_copy(update={"pretrained_autoencoder": str(other), "resume": True}))


def test_an_autoencoder_for_other_channels_is_refused_before_training(disc_data, tiny_text_encoder, tmp_path):
    rgb = tmp_path / "rgb_vae"
    build_autoencoder(AutoencoderConfig(block_out_channels=[8, 8], norm_num_groups=4), 3).save_pretrained(rgb)
    with pytest.raises(ConfigError, match="takes 3-channel images, but the data have 1"):
        train_ldm(tiny_train_config(disc_data, tmp_path / "m", tiny_text_encoder, pretrained_autoencoder=str(rgb)))


def test_bad_references_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not an autoencoder folder"):
        autoencoder_folder(tmp_path / "empty")
    with pytest.raises(DataError, match=r"unknown built-in autoencoder 'nope'; available: builtin:phantom-vae-128, "
                       r"builtin:phantom-vae-128-gan"):
        autoencoder_folder("builtin:nope")
    assert autoencoder_folder("builtin:phantom-vae-128").name == "phantom-vae-128"
    assert Path(autoencoder_folder("builtin:phantom-vae-128"), AUTOENCODER_WEIGHTS).is_file()


def test_the_shipped_autoencoders_reconstruct_unseen_phantom_slices(tmp_path):
    """Both shipped first stages saw phantom seed 1 only; these are other patients (seed 7).

    The sharpened one shares the plain one's encoder bit for bit (only its decoder was tuned), so an
    LDM trained on either's latents decodes with both.
    """
    from synthmed.data.phantom import PhantomConfig, generate_phantom
    from synthmed.models.ldm import load_autoencoder
    from synthmed.train.ldm.data import load_training_data

    generate_phantom(PhantomConfig(out=tmp_path / "ph", n=8, size=128, seed=7, workers=1), progress=False)
    images = load_training_data(tmp_path / "ph", resolution=128, split=None, use_paraphrases=False).images
    plain, sharp = load_autoencoder("builtin:phantom-vae-128"), load_autoencoder("builtin:phantom-vae-128-gan")
    for vae in (plain, sharp):
        assert next(vae.parameters()).dtype == torch.float32  # stored as float16, loaded as float32
        with torch.no_grad():
            recon = vae.decode(vae.encode(images).latent_dist.mode()).sample.clamp(-1, 1)
        mae = float((recon - images).abs().mean() / 2)  # [0, 1] units; 0.024 / 0.028 on the demo's validation slices
        assert mae < 0.04, mae
    for name, weight in plain.encoder.state_dict().items():
        assert torch.equal(weight, sharp.encoder.state_dict()[name]), name
    assert not torch.equal(plain.decoder.conv_out.weight, sharp.decoder.conv_out.weight)
