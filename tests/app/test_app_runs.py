"""The app reads its defaults from a run directory; the Runs tab shows its headline, grids and report."""

from __future__ import annotations

import pytest

from synthmed.app import generate as G
from synthmed.app.models import DEFAULT_JUDGE, AppConfig, AppModels
from synthmed.app.runs import run_overview
from synthmed.errors import DataError


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
