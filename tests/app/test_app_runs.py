"""The app reads its defaults from a run directory; the Runs tab shows its headline, grids and report."""

from __future__ import annotations

import pytest

from synthmed.app import generate as G
from synthmed.app.models import DEFAULT_JUDGE, AppConfig, AppModels
from synthmed.app.runs import run_overview
from synthmed.errors import DataError
from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.runner import run_pipeline


@pytest.fixture(scope="module")
def tiny_run(app_sd, tmp_path_factory):
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


def test_models_come_from_the_run(tiny_run, app_sd):
    models = AppModels(AppConfig(run=tiny_run, device="cpu"))
    g = models.generation
    assert g.model == str(app_sd) and (g.steps, g.scheduler, g.guidance_scale) == (2, "ddim", 2.5)
    assert models.judge_ref == DEFAULT_JUDGE and models.localizer_dir is None
    images = G.generate_images(models, "a scan", None, n=1, seed=0, steps=g.steps, guidance_scale=g.guidance_scale,
                               scheduler=g.scheduler)
    assert images[0].image.shape[:2] == (32, 32)
    assert AppModels(AppConfig(run=tiny_run, model="other/model")).generation.model == "other/model"


def test_run_overview(tiny_run, tmp_path):
    view = run_overview(tiny_run)
    assert view.headline_markdown.startswith("### app-run") and "adherence: tumour presence" in view.headline_markdown
    assert view.report.is_file() and view.report.name == "report.html"
    assert "<img" in view.grids_html
    with pytest.raises(DataError, match="not a run directory"):
        run_overview(tmp_path)
