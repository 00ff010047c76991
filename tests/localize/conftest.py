"""Fixtures: a tiny lesion dataset and a localiser trained on it in seconds (module scope)."""

from __future__ import annotations

import pytest

from synthmed.localize.config import LocalizeTrainConfig
from synthmed.localize.train import train_localizer
from synthmed.testing.localize import TINY_TRAIN, write_lesion_dataset


@pytest.fixture(scope="session")
def lesion_dir(tmp_path_factory):
    """36 images of 32 px with masks (read-only)."""
    return write_lesion_dataset(tmp_path_factory.mktemp("lesions") / "data")


@pytest.fixture(scope="session")
def trained_localizer(lesion_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("loc") / "model"
    train_localizer(LocalizeTrainConfig.model_validate({"data": lesion_dir, "out": out, **TINY_TRAIN}))
    return out
