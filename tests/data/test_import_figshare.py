"""The ``figshare`` importer on MATLAB v7.3 files written with h5py the way MATLAB writes them."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from synthmed.data import ImageDataset
from synthmed.data.importers import import_dataset
from synthmed.errors import DataError
from synthmed.findings import BrainMRIFindings

H, W = 40, 32  # not square, so a missing transpose would show


def write_mat(path: Path, image: np.ndarray, mask: np.ndarray, label: int, pid: str,
              skip: tuple[str, ...] = ()) -> None:
    """A figshare-style v7.3 .mat: HDF5 with MATLAB's 512-byte user block and column-major arrays."""
    with h5py.File(path, "w", userblock_size=512) as fh:
        group = fh.create_group("cjdata")
        fields = {
            "image": image.T,  # MATLAB stores column-major: h5py sees the transpose
            "tumorMask": mask.T.astype(np.uint8),
            "label": np.array([[float(label)]]),
            "PID": np.array([[ord(c)] for c in pid], dtype=np.uint16),  # char codes, as MATLAB does
            "tumorBorder": np.array([[3.0, 4.0, 5.0, 6.0]]),
        }
        for key, value in fields.items():
            if key not in skip:
                group[key] = value
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .")  # what MATLAB puts first


def _slice(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 3500, (H, W)).astype(np.int16)
    mask = np.zeros((H, W), dtype=bool)
    mask[5:12, 3:9] = True  # asymmetric: a transposed mask would land elsewhere
    return image, mask


@pytest.fixture
def figshare_dir(tmp_path) -> Path:
    src = tmp_path / "figshare" / "part1"
    src.mkdir(parents=True)
    for i, (label, pid) in enumerate([(1, "100360"), (2, "100360"), (3, "MR040237")], start=1):
        write_mat(src / f"{i}.mat", *_slice(i), label=label, pid=pid)
    return tmp_path / "figshare"


def test_figshare_import_keeps_16_bit_values_masks_labels_and_patients(figshare_dir, tmp_path):
    report = import_dataset("figshare", figshare_dir, tmp_path / "out", progress=False)
    assert report.written == 3 and not report.skipped
    ds = ImageDataset(tmp_path / "out")
    rec = {r.file_name: r for r in ds}["images/1.png"]
    image, mask = _slice(1)
    stored = ds.image(rec)
    assert stored.dtype == np.uint16 and stored.shape == (H, W)
    assert np.array_equal(stored, image.astype(np.uint16))  # transposed back, values untouched
    assert np.array_equal(ds.mask(rec), mask)
    assert rec.windowing is None
    assert [r.label for r in ds] == ["meningioma", "glioma", "pituitary"]
    assert [r.patient_id for r in ds] == ["100360", "100360", "MR040237"]
    assert ds.records[1].findings == BrainMRIFindings(tumor_present=True, tumor_type="glioma")


def test_figshare_with_windowing_is_8_bit_and_resized(figshare_dir, tmp_path):
    import_dataset("figshare", figshare_dir, tmp_path / "out", windowing="percentile:1:99", size=20,
                   progress=False)
    ds = ImageDataset(tmp_path / "out")
    rec = ds.records[0]
    assert ds.image(rec).dtype == np.uint8 and ds.image(rec).shape == (20, 20)
    assert ds.mask(rec).shape == (20, 20) and ds.mask(rec).any()
    assert rec.windowing["method"] == "percentile" and rec.windowing["bits"] == 8


def test_single_file_source_and_cvind_is_ignored(figshare_dir, tmp_path):
    write_mat(figshare_dir / "cvind.mat", *_slice(0), label=1, pid="x")
    assert import_dataset("figshare", figshare_dir, tmp_path / "all", progress=False).written == 3
    one = import_dataset("figshare", figshare_dir / "part1" / "2.mat", tmp_path / "one", progress=False)
    assert one.written == 1


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: p.write_bytes(b"\x00garbage" * 64), "not a readable MATLAB file"),
    (lambda p: write_mat(p, *_slice(9), label=1, pid="7", skip=("tumorMask",)),
     r"missing field\(s\) cjdata/tumorMask"),
    (lambda p: write_mat(p, _slice(9)[0], np.zeros((H, W + 1), bool), label=1, pid="7"),
     "mask is 33x40 but the image is 32x40"),
    (lambda p: write_mat(p, *_slice(9), label=7, pid="7"), "cjdata/label is 7; expected 1"),
], ids=["corrupt", "missing-field", "mask-size", "bad-label"])
def test_bad_mat_files_are_skipped_or_fail_when_strict(figshare_dir, tmp_path, make, match):
    bad = figshare_dir / "part1" / "99.mat"
    make(bad)
    report = import_dataset("figshare", figshare_dir, tmp_path / "out", progress=False)
    assert report.written == 3 and len(report.skipped) == 1
    assert report.skipped[0].source == str(bad)
    assert report.skipped[0].reason.startswith(str(bad)) and re.search(match, report.skipped[0].reason)
    with pytest.raises(DataError, match=match):
        import_dataset("figshare", figshare_dir, tmp_path / "strict", strict=True, progress=False)


def test_no_mat_files_is_a_structural_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .mat files found"):
        import_dataset("figshare", tmp_path / "empty", tmp_path / "out", progress=False)
