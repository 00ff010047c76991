import json

import numpy as np
import pytest

from synthmed.data import DatasetWriter, ImageDataset, load_image, read_records, write_records
from synthmed.data.imageio import quantize, save_png_atomic, to_float01
from synthmed.data.windowing import Windowing, parse_windowing
from synthmed.errors import ConfigError, DataError
from synthmed.findings import BrainMRIFindings


def _img(dtype=np.uint8, shape=(24, 20)):
    rng = np.random.default_rng(0)
    top = 255 if dtype == np.uint8 else 65535
    return rng.integers(0, top, size=shape, endpoint=True).astype(dtype)


def test_png_round_trip_keeps_dtype_and_channels(tmp_path):
    for arr in (_img(np.uint8), _img(np.uint16), _img(np.uint8, (8, 9, 3))):
        save_png_atomic(tmp_path / "x.png", arr)
        back = load_image(tmp_path / "x.png")
        assert back.dtype == arr.dtype and back.shape == arr.shape and np.array_equal(back, arr)


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        load_image(bad)
    with pytest.raises(DataError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_writer_reader_round_trip(tmp_path):
    w = DatasetWriter(tmp_path / "ds")
    mask = np.zeros((24, 20), bool)
    mask[3:7, 4:9] = True
    f = BrainMRIFindings(tumor_present=True, hemisphere="left")
    w.add("a.png", _img(), mask=mask, label="tumor", patient_id="p1", split="train", findings=f, text="t")
    w.add("b.png", _img(np.uint16), patient_id="p2", split="test", my_column=3)
    ds = ImageDataset(tmp_path / "ds")
    assert [r.file_name for r in ds] == ["images/a.png", "images/b.png"]
    assert ds.records[0].findings == f
    assert np.array_equal(ds.mask(ds.records[0]), mask)
    assert ds.image(ds.records[1]).dtype == np.uint16
    assert ds.records[1].my_column == 3  # unknown columns survive
    # Reopening for append sees what is there (resume).
    w2 = DatasetWriter(tmp_path / "ds")
    assert w2.has("a.png") and not w2.has("c.png")
    with pytest.raises(DataError, match="already in the dataset"):
        w2.add("a.png", _img())


def test_writer_rejects_mask_of_wrong_size(tmp_path):
    w = DatasetWriter(tmp_path)
    with pytest.raises(DataError, match="mask shape"):
        w.add("a.png", _img(), mask=np.zeros((5, 5), bool))
    assert not (tmp_path / "images" / "a.png").exists()  # nothing half-written


def _write_meta(root, rows):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "metadata.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("row,message", [
    ("{not json\n", "line 2: invalid JSON"),
    ({"file_name": "images/a.png", "split": "training"}, "line 2: field 'split'"),
    ({"file_name": "images/missing.png"}, "line 2: image 'images/missing.png' does not exist"),
    ({"file_name": "images/a.png"}, "line 2: duplicate file_name"),
    ({"file_name": "images/b.png", "mask_file_name": "masks/b.png"}, "line 2: mask 'masks/b.png' is 5x5"),
    ({"file_name": "../etc/passwd"}, "line 2: field 'file_name'"),
    ({"file_name": "images/b.png", "findings": {"modality": "brain_mri", "tumor_present": "maybe"}},
     "line 2: field 'findings"),
])
def test_reader_errors_name_file_and_line(tmp_path, row, message):
    _write_meta(tmp_path, [{"file_name": "images/a.png"}, row])
    save_png_atomic(tmp_path / "images" / "a.png", _img())
    save_png_atomic(tmp_path / "images" / "b.png", _img())
    save_png_atomic(tmp_path / "masks" / "b.png", np.zeros((5, 5), bool))
    with pytest.raises(DataError, match="metadata.jsonl") as err:
        read_records(tmp_path)
    assert message in str(err.value)


def test_torn_last_line_is_repaired_on_append(tmp_path):
    w = DatasetWriter(tmp_path)
    w.add("a.png", _img())
    with open(tmp_path / "metadata.jsonl", "a") as fh:
        fh.write('{"file_name": "images/b.p')  # a write killed half-way
    with pytest.raises(DataError, match="line 2"):
        read_records(tmp_path)
    w = DatasetWriter(tmp_path)
    w.add("b.png", _img())
    assert [r.file_name for r in read_records(tmp_path)] == ["images/a.png", "images/b.png"]


def test_write_records_is_atomic_replacement(tmp_path):
    w = DatasetWriter(tmp_path)
    w.add("a.png", _img(), text="old")
    recs = read_records(tmp_path)
    recs[0] = recs[0].model_copy(update={"text": "new"})
    write_records(tmp_path, recs)
    assert read_records(tmp_path)[0].text == "new"
    assert not list(tmp_path.glob(".tmp-*"))


def test_windowing_and_quantisation():
    raw = np.linspace(-1000, 3000, 101).reshape(1, -1)
    out, rec = Windowing("window", center=40, width=80).apply(raw)
    assert out.min() == 0 and out.max() == 1 and rec["raw_low"] == 0 and rec["raw_high"] == 80
    out, rec = parse_windowing("percentile:1:99").apply(raw)
    assert rec["method"] == "percentile" and -1000 < rec["raw_low"] < rec["raw_high"] < 3000
    assert parse_windowing("none") is None
    with pytest.raises(ConfigError, match="bad windowing spec"):
        parse_windowing("window:40")
    linear = parse_windowing("window:40:81:linear")  # DICOM LINEAR: centre 39.5, width 80
    out, rec = linear.apply(np.array([[-0.5, 39.5, 79.5]]))
    assert rec["function"] == "linear" and rec["raw_low"] == -0.5 and out.tolist() == [[0.0, 0.5, 1.0]]
    out, rec = parse_windowing("window:40:80:sigmoid").apply(np.array([[40.0, 60.0]]))
    assert "raw_low" not in rec and np.allclose(out, [[0.5, 1 / (1 + np.exp(-1))]])
    with pytest.raises(ConfigError, match="window function must be one of"):
        parse_windowing("window:40:80:gamma")
    q16 = quantize(np.array([0.0, 0.5, 1.0]), 16)
    assert q16.dtype == np.uint16 and q16[-1] == 65535
    assert np.allclose(to_float01(q16), [0, 0.5, 1], atol=1e-4)


def test_huggingface_imagefolder_opens_a_synthmed_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    w = DatasetWriter(tmp_path)
    mask = np.zeros((24, 20), bool)
    mask[2:5, 2:5] = True
    w.add("a.png", _img(), mask=mask, split="train", findings=BrainMRIFindings(tumor_present=True), text="x")
    w.add("b.png", _img(), split="test", findings=BrainMRIFindings(tumor_present=False), text="y")
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path), split="train")
    assert len(ds) == 2 and ds[0]["text"] == "x" and ds[0]["findings"]["tumor_present"] is True
    assert ds[0]["image"].size == (20, 24) and ds[0]["mask"] is not None


def test_writer_refuses_names_that_break_imagefolder(tmp_path):
    from synthmed.data.dataset import safe_image_name

    w = DatasetWriter(tmp_path)
    with pytest.raises(DataError, match="split word 'test'"):
        w.add("test_glioma_1.png", _img())
    with pytest.raises(DataError, match="plain file name"):
        w.add("a b.png", _img())
    assert safe_image_name("test", "glioma 1") == "te_glioma_1.png"
    w.add(safe_image_name("Testing", "x"), _img())  # "Testing" -> "te"
    assert read_records(tmp_path)[0].file_name == "images/te_x.png"
