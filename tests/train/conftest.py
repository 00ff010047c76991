"""Fixtures of the LDM training tests: a 32 px toy dataset, a tiny BERT, one tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthmed.testing.ldm import tiny_train_config, write_disc_dataset, write_tiny_text_encoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def disc_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 captioned 32 px images (tumour absent / left / right); read-only."""
    return write_disc_dataset(tmp_path_factory.mktemp("ldm") / "data", n=12, size=32)


@pytest.fixture(scope="session")
def tiny_text_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_text_encoder(tmp_path_factory.mktemp("ldm") / "text_encoder")


@pytest.fixture(scope="session")
def trained_ldm(tmp_path_factory: pytest.TempPathFactory, disc_data: Path, tiny_text_encoder: Path) -> Path:
    """A tiny LDM trained for a few steps per stage (read-only)."""
    from synthmed.train.ldm import train_ldm

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ldm") / "model"
    return train_ldm(tiny_train_config(disc_data, out, tiny_text_encoder))
