"""Fixtures of the generation tests: a tiny untrained diffusers pipeline folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmed.testing.pipelines import write_tiny_ldm


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 32 px grayscale text-to-image pipeline (read-only)."""
    return write_tiny_ldm(tmp_path_factory.mktemp("gen"))
