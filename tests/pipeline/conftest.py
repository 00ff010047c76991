"""Fixtures of the pipeline and report tests: a tiny but real run directory, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.runner import run_pipeline


def tiny_pipeline(model: Path | None = None) -> dict:
    """Phantom -> mask captions -> template paraphrases (-> generate at 2 and 4 steps -> fidelity of both +
    privacy with ``model``)."""
    stages = [
        {"name": "phantom", "kind": "data.phantom", "out": "data/phantom",
         "settings": {"n": 16, "size": 32, "slices_per_patient": 2}},
        {"name": "caption", "kind": "caption", "out": "data/real", "settings": {"data": "${phantom}"}},
        {"name": "paraphrase", "kind": "paraphrase", "settings": {"data": "${caption}", "per_caption": 2}},
    ]
    if model is not None:
        stages += [
            {"name": "generate", "kind": "generate", "out": "data/synthetic",
             "settings": {"model": str(model), "findings_grid": "balanced:${paraphrase}", "num_prompts": 8,
                          "steps": 2, "batch_size": 8, "progress": False}},
            {"name": "fidelity", "kind": "evaluate.fidelity", "out": "eval/fidelity",
             "settings": {"real": "${paraphrase}", "fake": "${generate}", "features": "efficientnet-lite0",
                          "bootstrap": 0, "per_finding": True, "min_group": 2}},
            # The same prompts at another step count: the report's Fréchet distance vs steps plot.
            {"name": "generate_4", "kind": "generate", "out": "data/synthetic-4steps",
             "settings": {"model": str(model), "findings_grid": "balanced:${paraphrase}", "num_prompts": 8,
                          "steps": 4, "batch_size": 8, "progress": False}},
            {"name": "fidelity_4", "kind": "evaluate.fidelity", "out": "eval/fidelity-4steps",
             "settings": {"real": "${paraphrase}", "fake": "${generate_4}", "features": "efficientnet-lite0",
                          "bootstrap": 0}},
            {"name": "privacy", "kind": "evaluate.privacy", "out": "eval/privacy",
             "settings": {"train": "${paraphrase}", "fake": "${generate}", "features": "efficientnet-lite0",
                          "pixel_size": 16, "quantile": 0.5, "max_pairs": 4}},
        ]
    return {"name": "tiny", "description": "a tiny test study", "seed": 0, "stages": stages}


@pytest.fixture(scope="session")
def tiny_study():
    """:func:`tiny_pipeline` (a function: call it for a fresh mapping)."""
    return tiny_pipeline


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthmed.testing.pipelines import write_tiny_sd

    return write_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory, tiny_sd: Path) -> Path:
    """A finished run with data, generation, fidelity and privacy stages (read-only for tests)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = tmp_path_factory.mktemp("run") / "tiny"
        run_pipeline(load_pipeline_config(data=tiny_pipeline(tiny_sd)), run_dir)
    finally:
        torch.set_num_threads(threads)
    return run_dir
