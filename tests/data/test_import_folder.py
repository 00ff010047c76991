"""The ``folder`` importer: the Kaggle Brain Tumor MRI layout and plain class folders."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.data import ImageDataset, load_image
from synthmed.data.importers import import_dataset
from synthmed.errors import DataError
from synthmed.findings import BrainMRIFindings, GenericFindings

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _kaggle(root: Path, per_class: int = 2) -> Path:
    """Training|Testing/<class>/*.jpg, gray images saved as RGB JPEGs like the Kaggle files."""
    rng = np.random.default_rng(1)
    for split, prefix in (("Training", "Tr"), ("Testing", "Te")):
        for cls in CLASSES:
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                gray = rng.integers(0, 256, (24, 20), dtype=np.uint8)
                Image.fromarray(np.stack([gray] * 3, -1)).save(d / f"{prefix}-{cls[:2]}_{i:04d}.jpg")
    return root


def test_kaggle_layout(tmp_path):
    report = import_dataset("folder", _kaggle(tmp_path / "kaggle"), tmp_path / "out", progress=False)
    assert report.written == 16 and not report.skipped
    ds = ImageDataset(tmp_path / "out")
    assert {r.split for r in ds} == {"train", "test"}
    assert len(ds.split("train")) == len(ds.split("test")) == 8
    by_label = {r.label: r for r in ds}
    assert set(by_label) == set(CLASSES)
    assert by_label["notumor"].findings == BrainMRIFindings(tumor_present=False)
    assert by_label["pituitary"].findings == BrainMRIFindings(tumor_present=True, tumor_type="pituitary")
    assert all(r.patient_id is None and r.source == "real" and r.windowing is None for r in ds)
    img = ds.image(ds.records[0])
    assert img.shape == (24, 20) and img.dtype == np.uint8  # grayscale stays single-channel
    assert ds.records[0].file_name.startswith("images/te_glioma_Te-gl_")  # no bare split words


def test_class_folders_without_splits_and_generic_classes(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / "src" / cls / "nested").mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "src" / cls / "nested" / "a.png")
    import_dataset("folder", tmp_path / "src", tmp_path / "out", progress=False)
    ds = ImageDataset(tmp_path / "out")
    assert sorted(r.file_name for r in ds) == ["images/cat_nested_a.png", "images/dog_nested_a.png"]
    assert all(r.split is None for r in ds)
    assert ds.records[0].findings == GenericFindings(label="cat")
    with pytest.raises(DataError, match=r"\['cat', 'dog'\] are not brain tumour classes"):
        import_dataset("folder", tmp_path / "src", tmp_path / "out2", modality="brain_mri", progress=False)


def test_16_bit_pngs_stay_16_bit_and_windowing_makes_8_bit(tmp_path):
    (tmp_path / "src" / "glioma").mkdir(parents=True)
    raw = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 900)
    Image.fromarray(raw).save(tmp_path / "src" / "glioma" / "a.png")
    import_dataset("folder", tmp_path / "src", tmp_path / "raw", progress=False)
    assert np.array_equal(load_image(tmp_path / "raw" / "images" / "glioma_a.png"), raw)
    import_dataset("folder", tmp_path / "src", tmp_path / "win", windowing="minmax", progress=False)
    win = ImageDataset(tmp_path / "win")
    assert win.image(win.records[0]).dtype == np.uint8
    rec = win.records[0].windowing
    assert (rec["method"], rec["raw_low"], rec["raw_high"], rec["bits"]) == ("minmax", 0.0, 56700.0, 8)


@pytest.mark.parametrize(("layout", "match"), [
    ({"Training/glioma": 1, "glioma": 1}, "mixes split folders and class folders"),
    ({"": 1, "glioma": 1}, "image files directly in"),
    ({"Training": 1}, "image files directly in 'Training'"),
    ({"glioma": 0}, "no images"),
])
def test_structural_problems_fail_loudly(tmp_path, layout, match):
    src = tmp_path / "src"
    src.mkdir()
    for folder, n in layout.items():
        (src / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(src / folder / f"{i}.png")
    with pytest.raises(DataError, match=match):
        import_dataset("folder", src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing written


def test_corrupt_image_is_skipped_and_reported_or_fails_when_strict(tmp_path, caplog):
    src = _kaggle(tmp_path / "kaggle", per_class=1)
    bad = src / "Training" / "glioma" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with caplog.at_level(logging.WARNING):
        report = import_dataset("folder", src, tmp_path / "out", progress=False)
    assert report.written == 8 and len(report.skipped) == 1
    assert report.skipped[0].source == str(bad) and "not a readable image" in report.skipped[0].reason
    assert "broken.jpg" in caplog.text
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        import_dataset("folder", src, tmp_path / "strict", strict=True, progress=False)


def test_imported_dataset_opens_with_hf_imagefolder(tmp_path):
    datasets = pytest.importorskip("datasets")
    src = _kaggle(tmp_path / "kaggle", per_class=1)
    import_dataset("folder", src, tmp_path / "out", size=16, progress=False)
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "out"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert len(ds) == 8
    row = ds[0]
    assert row["image"].size == (16, 16) and row["label"] in CLASSES
    assert row["findings"]["modality"] == "brain_mri"


def test_an_image_too_large_to_decode_is_skipped_and_reported(tmp_path, monkeypatch):
    from synthmed.data.imageio import image_size, load_image

    src = _kaggle(tmp_path / "kaggle", per_class=1)
    bomb = src / "Training" / "glioma" / "Tr-gl_bomb.png"
    Image.fromarray(np.zeros((60, 60), np.uint8)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 60 x 60 > 2 x 1000: PIL refuses it as a bomb
    with pytest.raises(DataError, match="too large to decode safely"):
        load_image(bomb)
    with pytest.raises(DataError, match="too large to decode safely"):
        image_size(bomb)
    report = import_dataset("folder", src, tmp_path / "out", progress=False)
    assert report.written == 8 and len(report.skipped) == 1 and "Tr-gl_bomb.png" in report.skipped[0].source
    assert "too large" in report.skipped[0].reason
