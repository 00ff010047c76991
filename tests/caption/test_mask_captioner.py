import shutil

import numpy as np
import pytest

from synthmed.caption import CaptionInput, MaskCaptioner, caption_dataset, get_captioner
from synthmed.data import ImageDataset, read_records
from synthmed.errors import CaptionError, ConfigError
from synthmed.evaluate import attribute_agreement


def test_recovers_phantom_ground_truth(tmp_path, phantom_dir):
    root = tmp_path / "ph"
    shutil.copytree(phantom_dir, root)
    summary = caption_dataset(root, "mask", progress=False)
    assert summary.captioned == 48 and summary.failed == 0
    recs = read_records(root)
    scores = attribute_agreement((r.findings, r.original_findings) for r in recs)
    assert scores["tumor_present"].accuracy == 1.0
    assert scores["hemisphere"].accuracy >= 0.95
    assert scores["size_category"].accuracy >= 0.9
    for r in recs:
        if r.findings.tumor_present:
            assert abs(r.findings.size_mm - r.original_findings.size_mm) < 3 * r.spacing_mm


def test_caption_keeps_originals_and_is_idempotent(tmp_path, phantom_dir):
    root = tmp_path / "ph"
    shutil.copytree(phantom_dir, root)
    before = read_records(root)
    caption_dataset(root, "mask", progress=False)
    first = (root / "metadata.jsonl").read_bytes()
    caption_dataset(root, "mask", progress=False)
    assert (root / "metadata.jsonl").read_bytes() == first
    after = read_records(root)
    assert [r.original_text for r in after] == [r.text for r in before]
    assert [r.original_findings for r in after] == [r.findings for r in before]
    assert all(r.captioner == "mask" for r in after)


def test_hemisphere_follows_radiological_convention():
    img = np.zeros((96, 96), np.uint8)
    yy, xx = np.mgrid[:96, :96]
    brain = ((yy - 48) / 40) ** 2 + ((xx - 48) / 32) ** 2 <= 1
    img[brain] = 150
    lesion = ((yy - 48) ** 2 + (xx - 66) ** 2) <= 16  # on the image's right
    img[lesion] = 250
    res = MaskCaptioner().caption_one(CaptionInput("x", img, lesion, spacing_mm=2.0))
    f = res.findings
    assert f.hemisphere == "left" and f.intensity == "hyperintense" and f.shape == "round"
    assert f.size_category == "small" and f.size_mm == pytest.approx(9 * 2.0, abs=2.5)
    empty = MaskCaptioner().caption_one(CaptionInput("y", img, np.zeros_like(lesion)))
    assert empty.findings.tumor_present is False


def test_registry_lists_names():
    with pytest.raises(ConfigError, match="available: api, hf, mask"):
        get_captioner("nonsense")


def test_rows_without_a_mask_are_errors_not_healthy(tmp_path):
    from synthmed.data import DatasetWriter
    from synthmed.findings import BrainMRIFindings

    w = DatasetWriter(tmp_path)
    known = BrainMRIFindings(tumor_present=True, tumor_type="glioma")
    w.add("a.png", np.full((32, 32), 100, np.uint8), findings=known, text="glioma")
    with pytest.raises(CaptionError, match="none of the 1 rows could be captioned.*a.png': no mask") as caught:
        caption_dataset(tmp_path, "mask", progress=False)
    assert caught.value.summary.captioned == 0 and caught.value.summary.failed == 1
    rec = ImageDataset(tmp_path).records[0]
    assert rec.findings == known and rec.text == "glioma"  # kept, never replaced by a default
    assert "no mask" in rec.caption_error


def test_findings_out_of_range_are_a_readable_error_without_pydantic_footer():
    # A mask covering most of a 64-px image at 8 mm per pixel: a "lesion" over 300 mm across.
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.where((xx - 32) ** 2 / 30**2 + (yy - 32) ** 2 / 31**2 <= 1, 120, 5).astype(np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[4:60, 4:60] = True
    res = MaskCaptioner().caption([CaptionInput("big.png", image, mask, 8.0, "brain_mri")])[0]
    assert res.findings is None
    assert res.error.startswith("field 'size_mm': Input should be less than or equal to 300")
    assert "pydantic" not in res.error and "http" not in res.error
