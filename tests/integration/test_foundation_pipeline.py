"""phantom -> split -> caption -> stats -> load with Hugging Face datasets, on a small set."""

import shutil

import pytest

from synthmed.caption import caption_dataset
from synthmed.data import read_records
from synthmed.data.split import split_by_patient
from synthmed.data.stats import dataset_stats
from synthmed.evaluate import attribute_agreement


def test_phantom_split_caption_load(tmp_path, phantom_dir):
    datasets = pytest.importorskip("datasets")
    root = tmp_path / "ph"
    shutil.copytree(phantom_dir, root)

    split_by_patient(root, ratios=(0.6, 0.2, 0.2), seed=3)
    recs = read_records(root)
    split_of = {}
    for r in recs:
        assert split_of.setdefault(r.patient_id, r.split) == r.split
    assert {r.split for r in recs} == {"train", "val", "test"}

    caption_dataset(root, "mask", progress=False)
    recs = read_records(root)
    scores = attribute_agreement((r.findings, r.original_findings) for r in recs)
    assert scores["tumor_present"].accuracy == 1.0 and scores["hemisphere"].accuracy >= 0.95

    stats = dataset_stats(root)
    assert stats  # counts are computed without error on a captioned dataset

    hf = datasets.load_dataset("imagefolder", data_dir=str(root), split="train")
    assert len(hf) == len(recs)
    row = hf[0]
    assert row["image"].size == (96, 96) and row["mask"].size == (96, 96)
    assert row["text"] == recs[0].text and row["split"] == recs[0].split
    assert row["findings"]["tumor_present"] == recs[0].findings.tumor_present
