"""The import driver and the pixel rules every format shares (formats: test_import_*.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.data import read_records
from synthmed.data.importers import available_formats, get_format, import_dataset
from synthmed.data.importers.base import Sample, safe_name
from synthmed.data.importers.pixels import pad_and_resize, prepare, raw_to_storable, squeeze_gray
from synthmed.data.windowing import Windowing
from synthmed.errors import ConfigError, DataError


def _class_tree(root: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("glioma", "notumor"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (12, 16), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_registry_lists_formats_and_rejects_unknown_names():
    assert available_formats() == ["folder", "figshare", "dicom", "nifti", "csv"]
    assert get_format("nifti").name == "nifti"
    with pytest.raises(ConfigError, match="unknown import format 'jpeg'; valid formats: folder, figshare"):
        get_format("jpeg")


def test_unknown_option_lists_the_formats_options(tmp_path):
    src = _class_tree(tmp_path / "src")
    with pytest.raises(ConfigError, match=r"axis do not apply to format 'folder'; its options are: modality"):
        import_dataset("folder", src, tmp_path / "out", axis=2, progress=False)


def test_missing_source_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere: folder source not found"):
        import_dataset("folder", tmp_path / "nowhere", tmp_path / "out", progress=False)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": 4}, "size must be between 8 and 8192"),
    ({"bits": 12}, "bits must be 8 or 16"),
    ({"windowing": "window:40"}, "bad windowing spec"),
])
def test_bad_common_options(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        import_dataset("folder", _class_tree(tmp_path / "src"), tmp_path / "out", progress=False, **kwargs)


def test_raw_values_are_stored_losslessly():
    pos = np.array([[0, 3000], [65535 // 2, 12]], dtype=np.int16)
    out, rec = raw_to_storable(pos)
    assert out.dtype == np.uint16 and rec is None and np.array_equal(out, pos)

    ct = np.array([[-1024, 0], [40, 3071]], dtype=np.int16)
    out, rec = raw_to_storable(ct)
    assert out.dtype == np.uint16 and rec == {"method": "none", "raw_offset": -32768}
    assert np.array_equal(out.astype(np.int32) + rec["raw_offset"], ct)

    assert raw_to_storable(np.array([[1.0, 2.0]], dtype=np.float32))[0].dtype == np.uint16
    assert raw_to_storable(np.array([[1, 100]], dtype=np.int8))[0].dtype == np.uint8
    with pytest.raises(ValueError, match="non-integer float32 values"):
        raw_to_storable(np.array([[0.5, 2.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="do not fit in 16 bits"):
        raw_to_storable(np.array([[0, 70000]], dtype=np.int32))


def test_gray_saved_as_rgb_becomes_single_channel_but_colour_stays():
    gray = np.random.default_rng(0).integers(0, 256, (5, 6), dtype=np.uint8)
    assert squeeze_gray(np.stack([gray] * 3, -1)).shape == (5, 6)
    jpeg_like = np.stack([gray, np.clip(gray.astype(int) + 1, 0, 255).astype(np.uint8), gray], -1)
    assert squeeze_gray(jpeg_like).shape == (5, 6)
    colour = np.stack([gray, 255 - gray, gray], -1)
    assert squeeze_gray(colour).shape == (5, 6, 3)


def test_pad_and_resize_pads_with_the_minimum_and_keeps_masks_binary():
    image = np.full((20, 40), 500, dtype=np.uint16)
    image[5:15, 10:30] = 3000
    mask = np.zeros((20, 40), dtype=bool)
    mask[5:15, 10:30] = True
    out, new_mask, scale = pad_and_resize(image, mask, 16)
    assert out.shape == (16, 16) and out.dtype == np.uint16 and scale == 40 / 16
    assert out[0, 8] == 500 and out[15, 8] == 500  # padded rows = the image minimum
    assert out.min() >= 500 and out.max() <= 3000  # no Lanczos overshoot outside the input range
    assert new_mask.dtype == bool and new_mask[8, 8] and not new_mask[0, 8]
    assert new_mask.mean() == pytest.approx(200 / 1600, abs=0.03)  # 10x20 lesion in the padded 40x40 square


def test_prepare_windowing_bits_spacing_and_mask_check():
    raw = np.arange(400, dtype=np.int16).reshape(20, 20)
    sample = Sample(name="x.png", image=raw, spacing_mm=0.5, mask=raw > 300)
    ready = prepare(sample, Windowing("minmax"), None, 10, source="x")
    assert ready.image.dtype == np.uint8 and ready.image.shape == (10, 10)
    assert ready.windowing["method"] == "minmax" and ready.windowing["bits"] == 8
    assert ready.windowing["raw_low"] == 0 and ready.windowing["raw_high"] == 399
    assert ready.spacing_mm == pytest.approx(1.0)
    ready16 = prepare(sample, Windowing("minmax"), 16, None, source="x")
    assert ready16.image.dtype == np.uint16 and ready16.image.max() == 65535
    assert ready16.windowing["bits"] == 16
    bad = Sample(name="x.png", image=raw, mask=np.zeros((20, 21), bool))
    with pytest.raises(DataError, match="source.png: mask is 21x20 but the image is 20x20"):
        prepare(bad, None, None, None, source="source.png")


def test_safe_name():
    assert safe_name("scan", "no tumor", "a/b (1)") == "scan_no_tumor_a_b_1.png"


def test_rerun_skips_written_images_and_refuses_other_pixel_settings(tmp_path):
    src, out = _class_tree(tmp_path / "src"), tmp_path / "out"
    first = import_dataset("folder", src, out, size=8, progress=False)
    assert (first.written, first.already_present) == (4, 0)
    again = import_dataset("folder", src, out, size=8, progress=False)
    assert (again.written, again.already_present) == (0, 4)
    assert len(read_records(out)) == 4
    runs = json.loads((out / "synthmed.json").read_text())["runs"]
    assert [r["result"]["written"] for r in runs] == [4, 0] and runs[0]["config"]["size"] == 8
    with pytest.raises(ConfigError, match="different size"):
        import_dataset("folder", src, out, size=16, progress=False)


def test_safe_name_abbreviates_split_words_that_confuse_imagefolder():
    assert safe_name("train", "glioma", "Tr-gl_0001") == "tr_glioma_Tr-gl_0001.png"
    assert safe_name("my test 1") == "my_te_1.png"
    assert safe_name("testimage", "contest") == "testimage_contest.png"  # only whole words
