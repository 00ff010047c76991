"""Shared fixtures: tiny datasets built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from synthmed.data.phantom import PhantomConfig, generate_phantom


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-slice, 96 px phantom dataset (read-only: copy it before modifying)."""
    out = tmp_path_factory.mktemp("phantom") / "ph"
    generate_phantom(PhantomConfig(out=out, n=48, size=96, seed=5, workers=1), progress=False)
    return out


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
