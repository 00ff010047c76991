"""The ``nifti`` importer: slicing, orientation, label volumes, filters and bad volumes."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthmed.data import ImageDataset
from synthmed.data.importers import import_dataset
from synthmed.errors import ConfigError, DataError
from synthmed.findings import BrainMRIFindings

X, Y, Z = 20, 24, 6
AFFINE = np.diag([0.9, 0.9, 3.0, 1.0])  # RAS+, 0.9 mm in-plane, 3 mm slices


def _volume(seed: int = 0) -> np.ndarray:
    vol = np.zeros((X, Y, Z), dtype=np.int16)  # slices 0 and 5 stay empty (air)
    vol[2:18, 3:20, 1:5] = np.random.default_rng(seed).integers(100, 900, (16, 17, 4))
    return vol


def _labels() -> np.ndarray:
    lab = np.zeros((X, Y, Z), dtype=np.uint8)
    lab[5:9, 6:10, 2] = 1
    lab[6:8, 7:9, 3] = 4  # BraTS-style class values: any non-zero is lesion
    return lab


@pytest.fixture
def nifti_dir(tmp_path) -> Path:
    """nnU-Net naming: images/p01_0000.nii.gz with labels/p01.nii.gz."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(_volume(), AFFINE), tmp_path / "images" / "p01_0000.nii.gz")
    nib.save(nib.Nifti1Image(_labels(), AFFINE), tmp_path / "labels" / "p01.nii.gz")
    return tmp_path


def test_axial_slices_with_masks_spacing_and_patient(nifti_dir, tmp_path):
    report = import_dataset("nifti", nifti_dir / "images", tmp_path / "out", labels=str(nifti_dir / "labels"),
                            progress=False)
    assert (report.written, report.filtered) == (4, 2)  # the two constant slices are left out
    ds = ImageDataset(tmp_path / "out")
    assert [r.file_name for r in ds] == [f"images/p01_0000_ax2_{k:04d}.png" for k in (1, 2, 3, 4)]
    assert all(r.patient_id == "p01_0000" and r.spacing_mm == pytest.approx(0.9) for r in ds)
    assert [r.label for r in ds] == ["notumor", "tumor", "tumor", "notumor"]
    assert ds.records[1].findings == BrainMRIFindings(tumor_present=True)
    rec = ds.records[1]  # slice k=2
    expected = _volume()[:, :, 2].T[::-1, ::-1]  # radiological display of the axial slice
    assert ds.image(rec).dtype == np.uint16 and np.array_equal(ds.image(rec), expected)
    assert np.array_equal(ds.mask(rec), (_labels()[:, :, 2] > 0).T[::-1, ::-1])


def test_radiological_orientation_whatever_the_storage_order(tmp_path):
    """A marker at the patient's right-anterior shows top-left, for RAS and LAS storage alike."""
    for name, flip in (("ras", 1.0), ("las", -1.0)):
        vol = np.zeros((X, Y, Z), dtype=np.int16)
        vol[:, :, 2] = 10
        i_right = X - 2 if flip > 0 else 1  # RAS: x grows to the right; LAS: it grows to the left
        vol[i_right, Y - 2, 2] = 1000  # right, anterior
        affine = np.diag([0.9 * flip, 0.9, 3.0, 1.0])
        (tmp_path / name).mkdir()
        nib.save(nib.Nifti1Image(vol, affine), tmp_path / name / f"{name}.nii.gz")
        import_dataset("nifti", tmp_path / name, tmp_path / f"out_{name}", progress=False)
        ds = ImageDataset(tmp_path / f"out_{name}")
        image = ds.image(ds.records[0])
        assert image.shape == (Y, X)
        assert np.unravel_index(image.argmax(), image.shape) == (1, 1), name


def test_lesion_slices_other_axis_and_volume_windowing(nifti_dir, tmp_path):
    labels = str(nifti_dir / "labels")
    report = import_dataset("nifti", nifti_dir / "images", tmp_path / "lesion", labels=labels,
                            slices="lesion", windowing="percentile:1:99", progress=False)
    assert (report.written, report.filtered) == (2, 4)
    ds = ImageDataset(tmp_path / "lesion")
    assert ds.records[0].windowing == ds.records[1].windowing  # one mapping for the whole volume
    assert ds.image(ds.records[0]).dtype == np.uint8

    report = import_dataset("nifti", nifti_dir / "images", tmp_path / "sag", axis=0, slices="all",
                            progress=False)
    assert report.written == X and not report.filtered
    rec = ImageDataset(tmp_path / "sag").records[0]
    assert rec.spacing_mm is None and rec.mask_file_name is None  # 0.9 x 3 mm pixels are not square
    assert any("non-square voxels" in w for w in report.warnings)


def test_patient_regex(nifti_dir, tmp_path):
    import_dataset("nifti", nifti_dir / "images", tmp_path / "out", patient_regex=r"^(p\d+)_", progress=False)
    assert {r.patient_id for r in ImageDataset(tmp_path / "out")} == {"p01"}


@pytest.mark.parametrize(("options", "match"), [
    ({"axis": 3}, "axis must be 0, 1 or 2"),
    ({"slices": "lesion"}, "slices='lesion' needs label volumes"),
    ({"slices": "some"}, "slices must be all, nonempty or lesion"),
    ({"patient_regex": "p01"}, "needs a group"),
])
def test_bad_options(nifti_dir, tmp_path, options, match):
    with pytest.raises(ConfigError, match=match):
        import_dataset("nifti", nifti_dir / "images", tmp_path / "out", progress=False, **options)


def test_bad_volumes_are_skipped_or_fail_when_strict(nifti_dir, tmp_path):
    images, labels = nifti_dir / "images", nifti_dir / "labels"
    nib.save(nib.Nifti1Image(_volume(1), AFFINE), images / "p02_0000.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((X, Y, Z + 1), np.uint8), AFFINE), labels / "p02.nii.gz")  # wrong shape
    nib.save(nib.Nifti1Image(_volume(2), AFFINE), images / "p03_0000.nii.gz")  # no label volume
    (images / "p04_0000.nii.gz").write_bytes(gzip.compress(b"not a nifti header" * 30))
    nib.save(nib.Nifti1Image(_labels(), AFFINE), labels / "p04.nii.gz")
    report = import_dataset("nifti", images, tmp_path / "out", labels=str(labels), progress=False)
    assert report.written == 4
    reasons = {Path(s.source).name: s.reason for s in report.skipped}
    assert "label volume" in reasons["p02_0000.nii.gz"] and "they must match" in reasons["p02_0000.nii.gz"]
    assert "no label volume matches" in reasons["p03_0000.nii.gz"]
    assert "not a readable NIfTI volume" in reasons["p04_0000.nii.gz"]
    with pytest.raises(DataError, match="p02_0000.nii.gz: label volume"):
        import_dataset("nifti", images, tmp_path / "strict", labels=str(labels), strict=True, progress=False)


def test_float_volume_without_windowing_asks_for_one(tmp_path):
    (tmp_path / "src").mkdir()
    vol = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "src" / "f.nii")
    with pytest.raises(DataError, match="non-integer float32 values.*pass a windowing"):
        import_dataset("nifti", tmp_path / "src", tmp_path / "out", strict=True, progress=False)
    windowed = import_dataset("nifti", tmp_path / "src", tmp_path / "w", windowing="minmax", progress=False)
    assert windowed.written == 3


def test_structural_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no NIfTI volumes"):
        import_dataset("nifti", tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="label volume or directory not found"):
        import_dataset("nifti", tmp_path / "empty", tmp_path / "out", labels=str(tmp_path / "nope"),
                       progress=False)
