"""Fixtures of the captioning tests: small datasets and a secret key in the environment."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data import DatasetWriter
from synthmed.findings import BrainMRIFindings

SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("SYNTHMED_API_KEY", SECRET)
    monkeypatch.delenv("SYNTHMED_API_BASE", raising=False)
    return SECRET


@pytest.fixture
def small_dir(tmp_path):
    """Four 32 px images with known findings and text (no masks)."""
    rng = np.random.default_rng(0)
    w = DatasetWriter(tmp_path / "small")
    for i in range(4):
        f = BrainMRIFindings(tumor_present=True, hemisphere="left" if i % 2 else "right", lobe="frontal")
        w.add(f"img{i}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8), findings=f,
              text=f"A tumour in the {f.hemisphere} frontal lobe.")
    return tmp_path / "small"
