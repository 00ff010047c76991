"""The ``dicom`` importer on pydicom's shipped MR_small.dcm, with privacy checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from synthmed.data import ImageDataset, load_image
from synthmed.data.importers import import_dataset
from synthmed.data.importers.dicom import pseudonymise
from synthmed.data.windowing import Windowing
from synthmed.errors import ConfigError, DataError

# Values that are allowed into the dataset: the spacing is asked for; the pixel data is the image.
_ALLOWED_TAGS = {"PixelSpacing", "PixelData"}


def _modify(src: Path, dst: Path, **changes) -> Path:
    ds = pydicom.dcmread(src)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(dst)
    return dst


@pytest.fixture
def dicom_dir(tmp_path) -> Path:
    """Two patients: MR_small.dcm in a folder named after the patient, and a copy with another PatientID."""
    root = tmp_path / "dicom"
    (root / "CompressedSamples^MR1" / "series1").mkdir(parents=True)
    first = root / "CompressedSamples^MR1" / "series1" / "IM0001.dcm"
    shutil.copy(get_testdata_file("MR_small.dcm"), first)
    _modify(first, root / "other.dcm", PatientID="PAT-0042", PatientName="Doe^Jane")
    return root


def _metadata(out: Path) -> str:
    return (out / "metadata.jsonl").read_text(encoding="utf-8")


def test_dicom_import_values_spacing_and_pseudonymised_patients(dicom_dir, tmp_path):
    report = import_dataset("dicom", dicom_dir, tmp_path / "out", progress=False)
    assert report.written == 2 and not report.skipped
    ds = ImageDataset(tmp_path / "out")
    pids = {r.patient_id for r in ds}
    assert pids == {pseudonymise("4MR1"), pseudonymise("PAT-0042")}
    assert all(p.startswith("dcm-") and len(p) == 16 for p in pids)
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array  # int16, slope 1, intercept 0
    rec = next(r for r in ds if r.patient_id == pseudonymise("4MR1"))
    image = ds.image(rec)
    assert image.dtype == np.uint16 and np.array_equal(image, reference.astype(np.uint16))
    assert rec.spacing_mm == pytest.approx(0.3125) and rec.windowing is None
    assert all(r.label is None and r.findings is None and r.split is None for r in ds)


def test_no_dicom_tag_value_leaks_into_the_metadata(dicom_dir, tmp_path):
    out = tmp_path / "out"
    import_dataset("dicom", dicom_dir, out, progress=False)
    text = _metadata(out)
    names = " ".join(p.name for p in (out / "images").iterdir())
    checked = 0
    for path in dicom_dir.rglob("*.dcm"):
        for elem in pydicom.dcmread(path).iterall():
            if elem.keyword in _ALLOWED_TAGS or elem.VR in ("OB", "OW", "SQ", "UN"):
                continue
            multi = isinstance(elem.value, (list, pydicom.multival.MultiValue))
            values = elem.value if multi else [elem.value]
            for value in values:
                s = str(value).strip()
                if len(s) >= 3:  # shorter strings ("MR", "1") appear in any text by chance
                    checked += 1
                    assert s not in text, f"{elem.keyword} value {s!r} leaked into metadata.jsonl"
                    assert s not in names, f"{elem.keyword} value {s!r} leaked into an image name"
    assert checked > 50  # the check looked at real tags (names, UIDs, dates, institution, ...)
    assert "CompressedSamples" not in text and "series1" not in text  # nor the source path


def test_keep_patient_ids_and_salted_pseudonyms(dicom_dir, tmp_path):
    import_dataset("dicom", dicom_dir, tmp_path / "kept", keep_patient_ids=True, progress=False)
    assert {r.patient_id for r in ImageDataset(tmp_path / "kept")} == {"4MR1", "PAT-0042"}
    import_dataset("dicom", dicom_dir, tmp_path / "salted", id_salt="s3cret", progress=False)
    salted = {r.patient_id for r in ImageDataset(tmp_path / "salted")}
    assert salted == {pseudonymise("4MR1", "s3cret"), pseudonymise("PAT-0042", "s3cret")}
    assert salted.isdisjoint({pseudonymise("4MR1"), pseudonymise("PAT-0042")})
    assert "s3cret" not in (tmp_path / "salted" / "synthmed.json").read_text()  # the key is not stored
    with pytest.raises(ConfigError, match="id_salt has no effect"):
        import_dataset("dicom", dicom_dir, tmp_path / "x", keep_patient_ids=True, id_salt="s", progress=False)


def test_file_window_and_monochrome1_inversion(dicom_dir, tmp_path):
    import_dataset("dicom", dicom_dir, tmp_path / "win", file_window=True, progress=False)
    rec = ImageDataset(tmp_path / "win").records[0]
    assert rec.windowing["method"] == "window" and rec.windowing["center"] == 600
    assert rec.windowing["width"] == 1600 and rec.windowing["bits"] == 8
    normal = load_image(tmp_path / "win" / rec.file_name)

    src = tmp_path / "mono1"
    src.mkdir()
    _modify(get_testdata_file("MR_small.dcm"), src / "a.dcm", PhotometricInterpretation="MONOCHROME1")
    import_dataset("dicom", src, tmp_path / "inv", file_window=True, progress=False)
    inv = ImageDataset(tmp_path / "inv")
    assert inv.records[0].windowing["inverted"] is True
    assert np.abs(inv.image(inv.records[0]).astype(int) - (255 - normal.astype(int))).max() <= 1


def test_rescale_intercept_gives_signed_values_with_a_recorded_offset(tmp_path):
    src = tmp_path / "ct"
    src.mkdir()
    _modify(get_testdata_file("MR_small.dcm"), src / "ct.dcm", RescaleIntercept="-1024", RescaleSlope="1")
    import_dataset("dicom", src, tmp_path / "out", progress=False)
    ds = ImageDataset(tmp_path / "out")
    rec = ds.records[0]
    assert rec.windowing == {"method": "none", "raw_offset": -32768}
    hu = ds.image(rec).astype(np.int32) + rec.windowing["raw_offset"]
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.int32) - 1024
    assert np.array_equal(hu, reference)


def test_bad_dicom_files_are_skipped_or_fail_when_strict(dicom_dir, tmp_path):
    (dicom_dir / "junk.dcm").write_bytes(b"not a dicom file" * 20)
    _modify(dicom_dir / "other.dcm", dicom_dir / "nopixels.dcm", PixelData=None)
    report = import_dataset("dicom", dicom_dir, tmp_path / "out", progress=False)
    assert report.written == 2
    assert sorted(Path(s.source).name for s in report.skipped) == ["junk.dcm", "nopixels.dcm"]
    assert all("not a readable DICOM image" in s.reason for s in report.skipped)
    with pytest.raises(DataError, match="junk.dcm: not a readable DICOM image"):
        import_dataset("dicom", dicom_dir, tmp_path / "strict", strict=True, progress=False)


def test_folder_without_dicom_files_is_a_structural_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no DICOM files"):
        import_dataset("dicom", tmp_path / "src", tmp_path / "out", progress=False)


def _lut_item(descriptor: list[int], data: list[int]) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.add_new("LUTDescriptor", "US", descriptor)
    item.add_new("LUTData", "US", data)
    return item


def _mr_small(tmp_path: Path, name: str, **changes) -> Path:
    src = tmp_path / name
    src.mkdir()
    _modify(get_testdata_file("MR_small.dcm"), src / "a.dcm", **changes)
    return src


def _imported(tmp_path: Path, src: Path, **options):
    out = tmp_path / (src.name + "_out")
    import_dataset("dicom", src, out, progress=False, **options)
    ds = ImageDataset(out)
    return ds, ds.records[0]


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_file_window_follows_the_voi_lut_function_as_pydicom_does(tmp_path, function):
    from pydicom.pixels import apply_voi_lut

    src = _mr_small(tmp_path, function.lower(), WindowCenter="700", WindowWidth="900", VOILUTFunction=function)
    ds, rec = _imported(tmp_path, src, file_window=True, bits=16)
    assert rec.windowing["center"] == 700 and rec.windowing["width"] == 900
    assert rec.windowing.get("function", "linear_exact") == function.lower()
    reference = pydicom.dcmread(src / "a.dcm")
    y_max = 2 ** (reference.BitsStored - 1) - 1  # MR_small is signed: pydicom maps to [-y_max-1, y_max]
    expected = (apply_voi_lut(reference.pixel_array, reference) + y_max + 1) / (2 * y_max + 1)
    got = ds.image(rec).astype(np.float64) / 65535
    assert np.abs(got - expected).max() <= 1 / 65535 + 1e-9


def test_voi_lut_sequence_wins_over_the_window_and_is_recorded(tmp_path):
    # A 12-bit ramp LUT over 0..2047, inverted so that the LUT is clearly what was used.
    lut = [4095 - round(4095 * i / 2047) for i in range(2048)]
    src = _mr_small(tmp_path, "voilut", VOILUTSequence=[_lut_item([2048, 0, 12], lut)])
    ds, rec = _imported(tmp_path, src, file_window=True, bits=16)
    assert rec.windowing == {"method": "voi_lut", "lut_entries": 2048, "first_mapped": 0, "lut_bits": 12, "bits": 16}
    raw = pydicom.dcmread(src / "a.dcm").pixel_array.astype(np.int64)
    expected = np.asarray(lut)[np.clip(raw, 0, 2047)] / 4095
    assert np.abs(ds.image(rec) / 65535 - expected).max() <= 1 / 65535 + 1e-9


def test_modality_lut_sequence_gives_the_lut_values(tmp_path):
    from pydicom.pixels import apply_modality_lut

    lut = [(7 * i) % 4096 for i in range(4096)]
    src = _mr_small(tmp_path, "modlut", ModalityLUTSequence=[_lut_item([4096, 0, 16], lut)])
    ds, rec = _imported(tmp_path, src)
    reference = pydicom.dcmread(src / "a.dcm")
    expected = apply_modality_lut(reference.pixel_array, reference)
    assert not np.array_equal(expected, reference.pixel_array)
    assert rec.windowing is None and np.array_equal(ds.image(rec), expected.astype(np.uint16))


def test_fractional_rescale_needs_a_windowing_and_is_windowed_in_modality_units(tmp_path):
    src = _mr_small(tmp_path, "frac", RescaleSlope="0.5", RescaleIntercept="-10")
    with pytest.raises(DataError, match="windowing"):
        import_dataset("dicom", src, tmp_path / "raw", strict=True, progress=False)
    ds, rec = _imported(tmp_path, src, windowing=Windowing("minmax"), bits=16)
    values = pydicom.dcmread(src / "a.dcm").pixel_array * 0.5 - 10
    assert rec.windowing["raw_low"] == values.min() and rec.windowing["raw_high"] == values.max()


def test_a_bad_voi_lut_function_names_the_file(tmp_path):
    src = _mr_small(tmp_path, "badfn", VOILUTFunction="GAMMA")
    with pytest.raises(DataError, match=r"a\.dcm: VOI LUT Function 'GAMMA'"):
        import_dataset("dicom", src, tmp_path / "out", file_window=True, strict=True, progress=False)


def test_an_unreadable_rescale_slope_names_the_file(tmp_path):
    src = _mr_small(tmp_path, "badslope", RescaleSlope="1", RescaleIntercept="0")
    ds = pydicom.dcmread(src / "a.dcm")
    ds["RescaleSlope"].VR = "LO"  # a value that is not a number
    ds["RescaleSlope"].value = "one"
    ds.save_as(src / "a.dcm")
    with pytest.raises(DataError, match=r"a\.dcm: unusable Modality LUT"):
        import_dataset("dicom", src, tmp_path / "out", strict=True, progress=False)
