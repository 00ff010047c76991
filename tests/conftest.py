"""Shared fixtures: tiny datasets built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.testing.ldm import write_disc_dataset


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-slice, 96 px phantom dataset (read-only: copy it before modifying)."""
    out = tmp_path_factory.mktemp("phantom") / "ph"
    generate_phantom(PhantomConfig(out=out, n=48, size=96, seed=5, workers=1), progress=False)
    return out


@pytest.fixture(scope="session")
def disc_masks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 captioned 32 px disc images with lesion masks, all in split train (read-only)."""
    return write_disc_dataset(tmp_path_factory.mktemp("seg") / "data", n=24, size=32, masks=True)


def _seg_config(data, out, **overrides):
    from synthmed.segment import SegmenterTrainConfig

    base = {"data": str(data), "out": str(out), "max_steps": 60, "batch_size": 8, "val_split": "train",
            "model": {"resolution": 32, "channels": [8, 16, 32]}, "checkpoint_every": 30, "progress": False,
            "threads": 1}
    return SegmenterTrainConfig.model_validate({**base, **overrides})


@pytest.fixture(scope="session")
def seg_config():
    """``seg_config(data, out, **overrides)``: a 60-step config of a tiny segmenter for 32 px data."""
    return _seg_config


@pytest.fixture(scope="session")
def disc_segmenter(disc_masks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthmed.segment import train_segmenter

    return train_segmenter(_seg_config(disc_masks, tmp_path_factory.mktemp("seg") / "model"))


@pytest.fixture(scope="session")
def mask_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 captioned 32 px disc images with lesion masks (read-only)."""
    return write_disc_dataset(tmp_path_factory.mktemp("mask_ldm") / "data", n=12, size=32, masks=True)


@pytest.fixture(scope="session")
def mask_ldm(tmp_path_factory: pytest.TempPathFactory, mask_data: Path) -> Path:
    """A tiny LDM trained a few steps with ``unet.condition: mask+head`` (read-only)."""
    from synthmed.testing.ldm import tiny_train_config, write_tiny_text_encoder
    from synthmed.train.ldm import train_ldm

    root = tmp_path_factory.mktemp("mask_ldm")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_ldm(tiny_train_config(mask_data, root / "model", write_tiny_text_encoder(root / "te"),
                                           unet={"condition": "mask+head"}))
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module on one torch thread: tiny networks are faster so, above all on a loaded 2-core machine.

    Use it from a directory's conftest as an autouse fixture that requests it.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config: pytest.Config) -> None:
    # The fast suite never touches the network: no model hub, no dataset host.
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # torch-fidelity installed --no-deps (as CI does) imports only with torchvision stand-ins;
    # once imported, torchmetrics' own import of it succeeds too.
    from synthmed.testing.reference import import_torch_fidelity

    import_torch_fidelity()
