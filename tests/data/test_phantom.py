import shutil

import numpy as np
import pytest

from synthmed.data import ImageDataset, read_records
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.errors import ConfigError
from synthmed.findings import parse_text


def test_phantom_rows_images_masks_and_ground_truth(phantom_dir):
    ds = ImageDataset(phantom_dir)
    assert len(ds) == 48
    tumour = [r for r in ds if r.findings.tumor_present]
    healthy = [r for r in ds if not r.findings.tumor_present]
    assert tumour and healthy
    for r in ds:
        img = ds.image(r)
        assert img.shape == (96, 96) and img.dtype == np.uint8
        assert r.source == "phantom" and r.spacing_mm == pytest.approx(220 / 96)
        assert parse_text(r.text) == r.findings.model_copy(update={"size_mm": None})  # text says the truth
    for r in tumour:
        mask = ds.mask(r)
        assert mask is not None and mask.sum() > 0 and r.label == "tumor"
        f = r.findings
        assert None not in (f.hemisphere, f.lobe, f.size_mm, f.shape, f.intensity, f.edema, f.mass_effect)
        assert (f.orientation is None) == (f.shape == "round")
        # The tumour is where the findings say: patient left = image right (radiological convention).
        col = np.argwhere(mask)[:, 1].mean()
        assert (col > 48) == (f.hemisphere == "left")
    for r in healthy:
        assert not ds.mask(r).any() and r.label == "no_tumor"  # an empty mask: known healthy


def test_phantom_patient_level_splits(phantom_dir):
    recs = read_records(phantom_dir)
    split_of = {}
    for r in recs:
        assert split_of.setdefault(r.patient_id, r.split) == r.split
    assert {r.split for r in recs} == {"train", "val", "test"}
    # Slices of one patient share one tumour kind.
    by_patient = {}
    for r in recs:
        key = (r.findings.tumor_present, r.findings.hemisphere, r.findings.lobe, r.findings.shape)
        assert by_patient.setdefault(r.patient_id, key) == key


def test_phantom_is_deterministic_and_independent_of_workers(tmp_path, phantom_dir):
    out = tmp_path / "again"
    generate_phantom(PhantomConfig(out=out, n=48, size=96, seed=5, workers=2), progress=False)
    assert (out / "metadata.jsonl").read_bytes() == (phantom_dir / "metadata.jsonl").read_bytes()
    for name in ("images/P00001_s00.png", "images/P00012_s03.png"):
        assert (out / name).read_bytes() == (phantom_dir / name).read_bytes()
    other = tmp_path / "other"
    generate_phantom(PhantomConfig(out=other, n=8, size=96, seed=6, workers=1), progress=False)
    assert (other / "images/P00001_s00.png").read_bytes() != (phantom_dir / "images/P00001_s00.png").read_bytes()


def test_phantom_resumes_an_interrupted_run(tmp_path, phantom_dir):
    out = tmp_path / "resume"
    shutil.copytree(phantom_dir, out)
    lines = (out / "metadata.jsonl").read_text().splitlines(keepends=True)
    (out / "metadata.jsonl").write_text("".join(lines[:21]) + lines[21][:30])  # killed mid-line
    generate_phantom(PhantomConfig(out=out, n=48, size=96, seed=5, workers=1), progress=False)
    assert sorted((out / "metadata.jsonl").read_text().splitlines()) == sorted(
        (phantom_dir / "metadata.jsonl").read_text().splitlines())


def test_phantom_tumour_fraction_and_bad_config(tmp_path):
    out = tmp_path / "healthy"
    generate_phantom(PhantomConfig(out=out, n=8, size=64, seed=0, tumor_fraction=0.0, workers=1), progress=False)
    assert not any(r.findings.tumor_present for r in read_records(out))
    with pytest.raises(ConfigError, match="tumor_fraction"):
        PhantomConfig(out=tmp_path, tumor_fraction=1.5)
    with pytest.raises(ConfigError, match="size"):
        PhantomConfig(out=tmp_path, size=8)
