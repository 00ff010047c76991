"""Tiny real models for the app: a random-weight SD pipeline, a localiser trained in seconds, a phantom slice."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmed.app.models import AppConfig, AppModels


@pytest.fixture(scope="session")
def app_sd(tmp_path_factory) -> Path:
    from synthmed.testing.pipelines import write_tiny_sd

    return write_tiny_sd(tmp_path_factory.mktemp("app-sd") / "sd")


@pytest.fixture(scope="session")
def app_localizer(tmp_path_factory) -> Path:
    from synthmed.localize.config import LocalizeTrainConfig
    from synthmed.localize.train import train_localizer
    from synthmed.testing.localize import TINY_TRAIN, write_lesion_dataset

    root = tmp_path_factory.mktemp("app-loc")
    data = write_lesion_dataset(root / "data")
    train_localizer(LocalizeTrainConfig.model_validate({"data": data, "out": root / "model", **TINY_TRAIN}))
    return root / "model"


@pytest.fixture(scope="session")
def phantom_png(tmp_path_factory) -> Path:
    """One 32 px phantom slice with a tumour, as a PNG."""
    from synthmed.data.dataset import read_records
    from synthmed.data.phantom import PhantomConfig, generate_phantom

    root = generate_phantom(PhantomConfig(out=tmp_path_factory.mktemp("app-ph") / "ph", n=8, size=32, seed=1,
                                          workers=1), progress=False)
    rec = next(r for r in read_records(root) if r.findings.tumor_present)
    return root / rec.file_name


@pytest.fixture
def models(app_sd, app_localizer) -> AppModels:
    return AppModels(AppConfig(model=str(app_sd), localizer=app_localizer, device="cpu"))


@pytest.fixture(scope="session")
def tiny_run(app_sd, tmp_path_factory) -> Path:
    """A finished run: phantom -> captions -> generation with the tiny pipeline -> adherence."""
    from synthmed.app.models import DEFAULT_JUDGE
    from synthmed.pipeline.config import load_pipeline_config
    from synthmed.pipeline.runner import run_pipeline

    stages = [
        {"name": "phantom", "kind": "data.phantom", "settings": {"n": 12, "size": 32, "slices_per_patient": 2}},
        {"name": "caption", "kind": "caption", "out": "data/real", "settings": {"data": "${phantom}"}},
        {"name": "generate", "kind": "generate", "out": "data/synthetic",
         "settings": {"model": str(app_sd), "findings_grid": "balanced:${caption}", "num_prompts": 4, "steps": 2,
                      "scheduler": "ddim", "guidance_scale": 2.5, "progress": False}},
        {"name": "adherence", "kind": "evaluate.adherence", "settings": {"fake": "${generate}",
                                                                          "judge": DEFAULT_JUDGE}},
    ]
    run = tmp_path_factory.mktemp("app-run") / "run"
    run_pipeline(load_pipeline_config(data={"name": "app-run", "seed": 0, "stages": stages}), run)
    return run
