"""Fixtures of the fine-tuning tests: tiny SD / SDXL pipeline folders and a 32 px captioned dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthmed.testing.ldm import write_disc_dataset
from synthmed.testing.pipelines import write_tiny_sd, write_tiny_sdxl


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ft_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 captioned grayscale 32 px images labelled tumor / no_tumor (read-only)."""
    from synthmed.data.dataset import read_records, write_records

    root = write_disc_dataset(tmp_path_factory.mktemp("ft") / "data", n=8, size=32)
    records = [r.model_copy(update={"label": "tumor" if r.findings.tumor_present else "no_tumor"})
               for r in read_records(root)]
    write_records(root, records)
    return root


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight StableDiffusionPipeline folder (read-only)."""
    return write_tiny_sd(tmp_path_factory.mktemp("ft") / "sd")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight StableDiffusionXLPipeline folder (read-only)."""
    return write_tiny_sdxl(tmp_path_factory.mktemp("ft") / "sdxl")
