"""The localiser as the reader of mask adherence: true masks read better than masks moved elsewhere."""

from __future__ import annotations

import shutil

import pytest

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import save_png_atomic
from synthmed.evaluate.mask_adherence import MaskAdherenceConfig, evaluate_mask_adherence


def test_localizer_reads_true_masks_better_than_mirrored_ones(trained_localizer, lesion_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(lesion_dir, moved)
    ds = ImageDataset(moved)
    for r in ds.records:
        save_png_atomic(moved / r.mask_file_name, ds.mask(r)[::-1, ::-1])
    true = evaluate_mask_adherence(MaskAdherenceConfig(fake=lesion_dir, localizer=trained_localizer,
                                                       out=tmp_path / "t.json"))
    wrong = evaluate_mask_adherence(MaskAdherenceConfig(fake=moved, localizer=trained_localizer,
                                                        out=tmp_path / "w.json"))
    from synthmed.localize.localizer import load_localizer

    assert true.reader.startswith("localizer")
    assert true.threshold == load_localizer(trained_localizer).config.threshold  # the localiser's calibrated one
    assert true.metrics["pooled_pixel_auroc"].value > wrong.metrics["pooled_pixel_auroc"].value + 0.2


def test_exactly_one_reader():
    with pytest.raises(ValueError, match="exactly one"):
        MaskAdherenceConfig(fake="f", out="o.json")
    with pytest.raises(ValueError, match="exactly one"):
        MaskAdherenceConfig(fake="f", out="o.json", segmenter="s", localizer="l")
