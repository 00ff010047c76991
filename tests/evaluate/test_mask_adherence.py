"""Mask adherence: per-image scores, the dataset-level figures with intervals, the real reference, the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import save_png_atomic
from synthmed.errors import DataError
from synthmed.evaluate.mask_adherence import MaskAdherenceConfig, evaluate_mask_adherence, image_scores
from synthmed.results import MaskAdherenceResult, read_result


def test_image_scores():
    mask = np.zeros((20, 20), bool)
    mask[4:10, 4:10] = True
    exact = image_scores(mask.astype(float), mask, 0.5, 4)
    assert exact == {"dice": 1.0, "iou": 1.0, "pixel_auroc": 1.0, "centre_inside": 1.0}
    elsewhere = np.zeros((20, 20))
    elsewhere[12:18, 12:18] = 1.0
    moved = image_scores(elsewhere, mask, 0.5, 4)
    assert moved["dice"] == 0.0 and moved["centre_inside"] == 0.0 and moved["pixel_auroc"] < 0.5
    assert image_scores(np.zeros((20, 20)), mask, 0.5, 4)["centre_inside"] == 0.0  # nothing found: a miss
    empty = np.zeros((20, 20), bool)
    assert image_scores(np.zeros((20, 20)), empty, 0.5, 4) == {"healthy_clean": 1.0}
    assert image_scores(elsewhere, empty, 0.5, 4) == {"healthy_clean": 0.0}
    speck = np.zeros((20, 20))
    speck[0, 0] = 1.0  # below min_region_px: not a found lesion
    assert image_scores(speck, empty, 0.5, 4) == {"healthy_clean": 1.0}


def _moved_masks(src, dst):
    """A copy of ``src`` whose lesion masks are mirrored to the other side (images unchanged)."""
    shutil.copytree(src, dst)
    ds = ImageDataset(dst)
    for r in ds.records:
        save_png_atomic(dst / r.mask_file_name, ds.mask(r)[:, ::-1])
    return dst


def test_right_masks_score_high_and_moved_masks_low(disc_segmenter, disc_masks, tmp_path):
    good = evaluate_mask_adherence(MaskAdherenceConfig(fake=disc_masks, segmenter=disc_segmenter,
                                                       out=tmp_path / "good.json", real=disc_masks,
                                                       real_split="train"))
    bad = evaluate_mask_adherence(MaskAdherenceConfig(fake=_moved_masks(disc_masks, tmp_path / "moved"),
                                                      segmenter=disc_segmenter, out=tmp_path / "bad.json"))
    assert good.n == 24 and good.n_lesion == 16
    assert good.metrics["dice"].value > 0.7 and good.metrics["centre_inside"].value > 0.9
    assert bad.metrics["dice"].value < 0.1 and bad.metrics["centre_inside"].value < 0.1
    lo, hi = good.metrics["dice"].ci95
    assert lo <= good.metrics["dice"].value <= hi
    assert set(good.groups) == {"small", "large", "no_tumour"}
    assert good.groups["no_tumour"]["healthy_clean"].n == 8
    # The real reference: the very same rows, so the same figures.
    assert good.reference["dice"].value == pytest.approx(good.metrics["dice"].value)
    stored = read_result(tmp_path / "good.json", MaskAdherenceResult)
    assert stored.metrics["dice"].value == good.metrics["dice"].value


def test_rows_without_masks_are_refused(disc_segmenter, tmp_path):
    from synthmed.testing.ldm import write_disc_dataset

    plain = write_disc_dataset(tmp_path / "plain", n=3, size=32)
    with pytest.raises(DataError, match="no row has a mask_file_name"):
        evaluate_mask_adherence(MaskAdherenceConfig(fake=plain, segmenter=disc_segmenter, out=tmp_path / "x.json"))


def test_cli_prints_the_table(disc_segmenter, disc_masks, tmp_path):
    from typer.testing import CliRunner

    from synthmed.cli.main import app

    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", "mask-adherence", "--fake", str(disc_masks), "--segmenter",
                                      str(disc_segmenter), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Mask adherence" in result.output and out.is_file()
