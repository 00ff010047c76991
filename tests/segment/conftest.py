"""Fixtures of the segmenter tests (the disc dataset and segmenter fixtures are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield
