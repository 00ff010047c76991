"""Decoder fine-tuning against a patch critic: encoder untouched, each loss moves its own network, exact resume."""

from __future__ import annotations

import pytest
import torch

from synthmed.models.ldm import AutoencoderConfig, build_autoencoder
from synthmed.train.ldm.adversarial import (
    DecoderAndCritic,
    DecoderGANConfig,
    PatchCritic,
    finetune_decoder,
    latent_crops,
    make_decoder_gan_loss_fn,
)
from synthmed.train.ldm.autoencoder import encode_images

MODEL = AutoencoderConfig(block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4)


def _vae(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_autoencoder(MODEL, 1)


def _images(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _cfg(**kw) -> DecoderGANConfig:
    base = {"max_steps": 4, "batch_size": 2, "latent_crop": 4, "critic_start": 0, "warmup_steps": 1,
            "critic_width": 4, "critic_layers": 2}
    return DecoderGANConfig(**{**base, **kw})


def test_latent_crops_cut_the_matching_image_region():
    mean = torch.arange(2 * 4 * 8 * 8, dtype=torch.float32).reshape(2, 4, 8, 8)
    images = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    z, x = latent_crops(mean, torch.zeros_like(mean), images, 4, 2, torch.Generator().manual_seed(0))
    assert z.shape == (2, 4, 4, 4) and x.shape == (2, 1, 8, 8)
    for i in range(2):  # locate the latent crop, check the image crop is the same window at 2x
        flat = mean[i, 0]
        t, le = [int(v) for v in torch.nonzero(flat == z[i, 0, 0, 0])[0]]
        torch.testing.assert_close(x[i], images[i, :, 2 * t:2 * t + 8, 2 * le:2 * le + 8])
    whole, same = latent_crops(mean, torch.zeros_like(mean), images, None, 2, torch.Generator().manual_seed(0))
    assert torch.equal(whole, mean) and torch.equal(same, images)


def test_each_loss_moves_only_its_own_network():
    vae = _vae()
    model = DecoderAndCritic(vae, PatchCritic(1, 4, 2))
    assert not any(p.requires_grad for p in vae.encoder.parameters())
    images = _images()
    mean, std = encode_images(vae, images)
    loss_fn = make_decoder_gan_loss_fn(images, mean, std, _cfg(), seed=0, factor=2, device=torch.device("cpu"))
    # The critic's own loss must not reach the decoder.
    z, real = latent_crops(mean[:2], std[:2], images[:2], 4, 2, torch.Generator().manual_seed(0))
    fake, for_decoder, logits_real, logits_fake = model(z, real)
    (torch.relu(1 - logits_real).mean() + torch.relu(1 + logits_fake).mean()).backward()
    assert all(p.grad is None for p in vae.decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.critic.parameters())
    model.zero_grad(set_to_none=True)
    # The decoder's adversarial term must not reach the critic.
    (-for_decoder.mean()).backward()
    assert all(p.grad is None for p in model.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.decoder.parameters())
    model.zero_grad(set_to_none=True)
    assert torch.equal(loss_fn(model, 2, 0), loss_fn(model, 2, 0))  # the step decides every draw
    assert not torch.equal(loss_fn(model, 2, 0), loss_fn(model, 3, 0))


def test_finetuning_changes_the_decoder_only_and_resumes_exactly(tmp_path):
    images = _images(8)
    full = _vae()
    enc = {k: v.clone() for k, v in full.encoder.state_dict().items()}
    dec = {k: v.clone() for k, v in full.decoder.state_dict().items()}
    record = finetune_decoder(full, images, _cfg(max_steps=6), checkpoint_dir=tmp_path / "a", progress=False)
    assert record["steps"] == 6 and set(record["last_parts"]) == {"rec", "adv", "critic", "weight"}
    assert all(torch.equal(enc[k], v) for k, v in full.encoder.state_dict().items())
    assert any(not torch.equal(dec[k], v) for k, v in full.decoder.state_dict().items())

    # Killed after step 4 (checkpoints every 2 steps; the newest is lost with the kill), resumed: the same decoder.
    run = tmp_path / "b"
    finetune_decoder(_vae(), images, _cfg(max_steps=6), checkpoint_dir=run, progress=False, checkpoint_every=2)
    import shutil

    shutil.rmtree(run / "step-00000004")
    resumed = _vae()
    record = finetune_decoder(resumed, images, _cfg(max_steps=6), checkpoint_dir=run, progress=False, resume=True,
                              checkpoint_every=2)
    assert record["resumed_from"] == 2
    for k, v in full.decoder.state_dict().items():
        assert torch.equal(resumed.decoder.state_dict()[k], v), k


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="latent_crop"):
        DecoderGANConfig(latent_crop=1)
    with pytest.raises(ValueError, match="adversarial_weight"):
        DecoderGANConfig(adversarial_weight=-1)
