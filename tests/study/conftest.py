"""A small real dataset (the phantom) and a 'synthetic' one (its images blurred), and studies made of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.study import StudyCreateConfig, create_study
from synthmed.testing.study import write_fake


@pytest.fixture(scope="session")
def study_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(real, fake) dataset directories of 60 images each, 32 px (read-only)."""
    root = tmp_path_factory.mktemp("study_data")
    generate_phantom(PhantomConfig(out=root / "real", n=60, size=32, seed=2, workers=1), progress=False)
    return root / "real", write_fake(root / "real", root / "fake")


@pytest.fixture(scope="session")
def _template_study(study_data, tmp_path_factory) -> Path:
    real, fake = study_data
    out = tmp_path_factory.mktemp("template") / "study"
    return create_study(StudyCreateConfig(real=real, fake=fake, out=out, n_real=6, n_fake=6, seed=1,
                                          questions=["realism", "findings"]))


@pytest.fixture
def study(_template_study, tmp_path) -> Path:
    """A fresh copy of a 12-image study that asks realism and findings questions."""
    return Path(shutil.copytree(_template_study, tmp_path / "study"))
