"""Fixtures of the generation tests: a tiny untrained diffusers pipeline folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthmed.models.ldm import (
    AutoencoderConfig,
    NoiseScheduleConfig,
    UNetConfig,
    build_autoencoder,
    build_noise_scheduler,
    build_unet,
    save_pipeline,
)
from synthmed.models.text_encoders import load_text_encoder
from synthmed.testing.ldm import write_tiny_text_encoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 32 px grayscale text-to-image pipeline (read-only)."""
    root = tmp_path_factory.mktemp("gen")
    text = load_text_encoder(str(write_tiny_text_encoder(root / "te")), max_length=32)
    torch.manual_seed(0)
    vae = build_autoencoder(AutoencoderConfig(block_out_channels=(8, 8), norm_num_groups=4), image_channels=1)
    unet = build_unet(UNetConfig(block_out_channels=(16, 32), attention=(False, True), norm_num_groups=8,
                                 attention_heads=2), latent_channels=4, sample_size=16,
                      cross_attention_dim=text.hidden_size)
    return save_pipeline(root / "model", vae=vae, unet=unet, text_encoder=text.model, tokenizer=text.tokenizer,
                         scheduler=build_noise_scheduler(NoiseScheduleConfig()))
