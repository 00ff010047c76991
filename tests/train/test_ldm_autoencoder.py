"""Stage 1 of the LDM: the autoencoder's training loss and its decoder-noise augmentation."""

from __future__ import annotations

import pytest
import torch

from synthmed.models.ldm import AutoencoderConfig, build_autoencoder
from synthmed.train.ldm.autoencoder import AutoencoderForTraining, make_autoencoder_loss_fn
from synthmed.train.ldm.config import AutoencoderTrainConfig

MODEL = AutoencoderConfig(block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4)


def _wrapper(seed: int = 0) -> AutoencoderForTraining:
    torch.manual_seed(seed)
    return AutoencoderForTraining(build_autoencoder(MODEL, 1))


def _images(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _loss_fn(decoder_noise: float):
    cfg = AutoencoderTrainConfig(model=MODEL, batch_size=4, crop_size=None, decoder_noise=decoder_noise)
    return make_autoencoder_loss_fn(_images(), cfg, seed=0, rank=0, world=1,
                                    downsample=MODEL.downsample_factor, latent_channels=MODEL.latent_channels,
                                    device=torch.device("cpu"))


def test_decoder_noise_is_added_in_units_of_the_latent_spread():
    model = _wrapper().eval()
    x = _images(4)
    eps = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        recon, mean, logvar = model(x, eps, noise)
        z = mean + (0.5 * logvar).exp() * eps + noise * mean.std()
        expected = model.vae.decode(z).sample
        plain, _, _ = model(x, eps)
    torch.testing.assert_close(recon, expected)
    assert (recon - plain).abs().max() > 1e-4


def test_decoder_noise_changes_the_loss_and_is_reproducible_per_step():
    model = _wrapper()
    with torch.no_grad():
        clean = _loss_fn(0.0)(model, 3, 0)
        noisy_fn = _loss_fn(0.5)
        noisy = noisy_fn(model, 3, 0)
        again = noisy_fn(model, 3, 0)
        other_step = noisy_fn(model, 4, 0)
    assert torch.equal(noisy, again)  # the step's generator decides the noise: resumable runs match
    assert not torch.isclose(noisy, clean)
    assert not torch.isclose(noisy, other_step)


def test_decoder_noise_must_not_be_negative():
    with pytest.raises(ValueError, match="decoder_noise"):
        AutoencoderTrainConfig(decoder_noise=-0.1)
