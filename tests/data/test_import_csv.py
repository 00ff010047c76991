"""The ``csv`` importer: ImageCLEFmed MEDVQA-GI prompt-gt.csv and generic image,text files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.data import ImageDataset
from synthmed.data.importers import import_dataset
from synthmed.errors import DataError
from synthmed.findings import GIEndoscopyFindings

PROMPTS = [
    ("Generate an image containing a polyp", "cl8k2u1.jpg"),
    ("Generate an image with 1 polyp of size 5-10mm located in the center-left", "cl8k2u1.jpg"),
    ("Generate a colonoscopy image with a polyp of size 11-20mm in the lower-right", "cl8k2u1.jpg"),
    ("Generate an image with no polyps but with polyps of size >20mm", "cl8k2u1.jpg"),  # self-contradictory
    ("Generate an image with a biopsy forceps", "cla820gl0.jpg"),
    ("Generate an image containing an instrument", "cla820gl0.jpg"),
]


def _rgb(path: Path, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (18, 26, 3), dtype=np.uint8)
    Image.fromarray(image).save(path)
    return image


@pytest.fixture
def medvqa(tmp_path) -> Path:
    """prompt-gt.csv with the images in images/ beside it, as in the MEDVQA-GI development set."""
    root = tmp_path / "medvqa"
    (root / "images").mkdir(parents=True)
    _rgb(root / "images" / "cl8k2u1.jpg", 0)
    _rgb(root / "images" / "cla820gl0.jpg", 1)
    lines = ["Prompt;Filename"] + [f"{p};{f}" for p, f in PROMPTS]
    (root / "prompt-gt.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_medvqa_prompts_merge_into_one_row_per_image(medvqa, tmp_path):
    report = import_dataset("csv", medvqa / "prompt-gt.csv", tmp_path / "out", progress=False)
    assert report.written == 2 and not report.skipped
    assert len(report.warnings) == 1 and "line 5: prompt not parseable" in report.warnings[0]
    ds = ImageDataset(tmp_path / "out")
    polyp = {r.file_name: r for r in ds}["images/cl8k2u1.png"]
    assert polyp.text == PROMPTS[0][0]
    assert polyp.paraphrases == [p for p, _ in PROMPTS[1:4]]  # the unparseable one is kept as text
    assert polyp.findings == GIEndoscopyFindings(procedure="colonoscopy", polyp_count=1,
                                                 size_ranges_mm=("5-10", "11-20"),
                                                 locations=("center-left", "lower-right"))
    image = ds.image(polyp)
    assert image.shape == (18, 26, 3) and image.dtype == np.uint8  # colour stays colour, never windowed
    tool = {r.file_name: r for r in ds}["images/cla820gl0.png"]
    assert tool.findings.instrument == "biopsy forceps" and tool.paraphrases == [PROMPTS[5][0]]


def test_folder_with_prompt_gt_csv_is_accepted(medvqa, tmp_path):
    assert import_dataset("csv", medvqa, tmp_path / "out", progress=False).written == 2


def test_generic_image_text_csv_with_extra_columns(tmp_path):
    (tmp_path / "scans").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "scans" / "a.png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "scans" / "b.png")
    (tmp_path / "pairs.csv").write_text(
        'image,text,label,patient_id,split\n'
        'scans/a.png,"A large tumour, left frontal lobe",glioma,P1,train\n'
        'scans/b.png,No tumour.,notumor,P2,test\n', encoding="utf-8")
    import_dataset("csv", tmp_path / "pairs.csv", tmp_path / "out", progress=False)
    ds = ImageDataset(tmp_path / "out")
    a, b = ds.records
    assert (a.file_name, a.text, a.label, a.patient_id, a.split) == (
        "images/scans_a.png", "A large tumour, left frontal lobe", "glioma", "P1", "train")
    assert a.findings is None and b.split == "test"  # generic form: no findings unless asked
    import_dataset("csv", tmp_path / "pairs.csv", tmp_path / "brain", modality="brain_mri", progress=False)
    a, b = ImageDataset(tmp_path / "brain").records
    assert a.findings.tumor_present and a.findings.lobe == "frontal" and not b.findings.tumor_present


@pytest.mark.parametrize(("content", "match"), [
    ("Prompt;Picture\nx;a.jpg\n", r"prompt-gt.csv, line 1: no image column .*header is \['Prompt', 'Picture'\]"),
    ("Filename\na.jpg\n", "line 1: no text column"),
    ("", "line 1: the CSV is empty"),
    ("Prompt;Filename\n", "header but no rows"),
    ("Prompt;Filename\nx;cl8k2u1.jpg;extra\n", "line 2: row has 3 fields but the header has 2"),
    ("image,text,split\ncl8k2u1.jpg,x,training\n", "line 2: split 'training' is not one of train, val, test"),
])
def test_structural_csv_errors_name_the_file_and_line(medvqa, tmp_path, content, match):
    (medvqa / "prompt-gt.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        import_dataset("csv", medvqa / "prompt-gt.csv", tmp_path / "out", progress=False)


def test_rows_naming_missing_or_corrupt_images_are_skipped_or_fail_when_strict(medvqa, tmp_path):
    (medvqa / "images" / "broken.jpg").write_bytes(b"no jpeg here")
    with (medvqa / "prompt-gt.csv").open("a", encoding="utf-8") as fh:
        fh.write("Generate an image with a polyp;missing.jpg\nGenerate an image with a polyp;broken.jpg\n")
    report = import_dataset("csv", medvqa / "prompt-gt.csv", tmp_path / "out", progress=False)
    assert report.written == 2
    assert [s.line for s in report.skipped] == [8, 9]
    assert "line 8: row names image 'missing.jpg', which does not exist" in report.skipped[0].reason
    assert "line 9: row's image 'broken.jpg' is not readable" in report.skipped[1].reason
    with pytest.raises(DataError, match=r"prompt-gt.csv, line 8: row names image 'missing.jpg'"):
        import_dataset("csv", medvqa / "prompt-gt.csv", tmp_path / "strict", strict=True, progress=False)


def test_a_csv_that_is_not_utf8_names_the_file_and_line(tmp_path):
    (tmp_path / "pairs.csv").write_bytes(b"image,text\na.png,caf\xe9 au lait\n")  # Latin-1, not UTF-8
    with pytest.raises(DataError, match=r"pairs.csv, line 2: not UTF-8 text \(byte 0xe9"):
        import_dataset("csv", tmp_path / "pairs.csv", tmp_path / "out", progress=False)
