"""The lesion segmenter: it learns the toy lesions, saves and loads, resumes exactly, refuses data without masks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthmed.data.dataset import ImageDataset, read_records, write_records
from synthmed.errors import DataError
from synthmed.segment import LesionSegmenter, train_segmenter


def test_it_finds_the_toy_lesions_and_stores_its_threshold(disc_segmenter, disc_masks):
    model = LesionSegmenter.from_pretrained(disc_segmenter)
    prov = json.loads((disc_segmenter / "synthmed.json").read_text())
    cal = prov["result"]["calibration"]
    assert model.config.threshold == cal["threshold"]
    assert cal["pixel_dice"] > 0.7 and cal["pixel_auroc"] > 0.95, cal
    ds = ImageDataset(disc_masks)
    images = np.stack([ds.image(r) / 255.0 for r in ds.records])
    probs = model.predict(images)
    assert probs.shape == images.shape and probs.min() >= 0 and probs.max() <= 1
    masks = np.stack([ds.mask(r) for r in ds.records])
    assert probs[masks].mean() > probs[~masks].mean() + 0.5
    # Another input size is resized in and back out.
    assert model.predict(np.zeros((2, 48, 48), np.float32)).shape == (2, 48, 48)
    assert "segmenter" in (disc_segmenter / "README.md").read_text()


def test_resume_continues_exactly(disc_segmenter, disc_masks, seg_config, tmp_path):
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(disc_segmenter / "checkpoints" / "step-00000030", out / "checkpoints" / "step-00000030")
    train_segmenter(seg_config(disc_masks, out, resume=True))
    a, b = load_file(str(disc_segmenter / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rows_without_masks_and_other_folders_are_refused(disc_masks, seg_config, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(disc_masks, bad)
    records = read_records(bad)
    records[5] = records[5].model_copy(update={"mask_file_name": None})
    write_records(bad, records)
    with pytest.raises(DataError, match=records[5].file_name):
        train_segmenter(seg_config(bad, tmp_path / "out"))
    with pytest.raises(DataError, match="not a lesion segmenter"):
        LesionSegmenter.from_pretrained(tmp_path)
