"""Patient-level splits: no patient in two splits, seeded, stratified, existing splits kept on request."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from synthmed.data import DatasetRecord, DatasetWriter, read_records, write_records
from synthmed.data.split import parse_ratios, split_by_patient
from synthmed.errors import ConfigError
from synthmed.findings import BrainMRIFindings

LABELS = ("glioma", "meningioma", "notumor")


def _dataset(root: Path, n_patients: int = 60, rows_per_patient=(1, 5), split: str | None = None) -> Path:
    """Metadata of patients with 1-4 slices each, one label per patient (splitting reads no pixels)."""
    rng = np.random.default_rng(0)
    records = []
    for p in range(n_patients):
        label = LABELS[p % len(LABELS)]
        findings = BrainMRIFindings(tumor_present=label != "notumor",
                                    tumor_type=None if label == "notumor" else label)
        for s in range(int(rng.integers(*rows_per_patient))):
            records.append(DatasetRecord(file_name=f"images/p{p:03d}_s{s}.png", label=label,
                                         patient_id=f"P{p:03d}", findings=findings, split=split))
    root.mkdir(parents=True)
    write_records(root, records)
    return root


def _records(root: Path) -> list[DatasetRecord]:
    return read_records(root, check_files=False)


def _patients_by_split(root: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in _records(root):
        out[r.patient_id or r.file_name].add(r.split)
    return out


def test_no_patient_in_two_splits_and_ratios_followed(tmp_path):
    root = _dataset(tmp_path / "ds")
    report = split_by_patient(root, (0.8, 0.1, 0.1), seed=0)
    records = _records(root)
    assert all(r.split in ("train", "val", "test") for r in records)
    assert all(len(splits) == 1 for splits in _patients_by_split(root).values())
    n = len(records)
    assert report.rows == dict(Counter(r.split for r in records))
    assert sum(report.rows.values()) == n and sum(report.patients.values()) == 60
    for split, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        assert abs(report.rows[split] / n - share) < 0.05, report.rows


def test_stratified_by_label_every_label_in_every_split(tmp_path):
    root = _dataset(tmp_path / "ds")
    split_by_patient(root, (0.6, 0.2, 0.2), seed=3, stratify_by="label")
    per = Counter((r.split, r.label) for r in _records(root))
    for split in ("train", "val", "test"):
        assert all(per[(split, label)] > 0 for label in LABELS), per


def test_seeded_and_deterministic(tmp_path):
    a, b, c = (_dataset(tmp_path / name) for name in ("a", "b", "c"))
    split_by_patient(a, seed=7)
    split_by_patient(b, seed=7)
    split_by_patient(c, seed=8)
    splits = [[r.split for r in _records(d)] for d in (a, b, c)]
    assert splits[0] == splits[1] and splits[0] != splits[2]
    assert (a / "metadata.jsonl").read_bytes() == (b / "metadata.jsonl").read_bytes()


def test_rows_without_patient_id_are_their_own_patients(tmp_path, caplog):
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    for i in range(10):
        writer.add(f"x{i}.png", np.zeros((4, 4), np.uint8), label="a")
    with caplog.at_level(logging.WARNING):
        report = split_by_patient(root, (0.6, 0.2, 0.2), seed=0)
    assert "10 row(s) have no patient_id" in caplog.text
    assert report.rows_without_patient == 10 and sum(report.patients.values()) == 10
    assert report.rows == {"train": 6, "val": 2, "test": 2}


def test_keep_existing_splits_or_resplit(tmp_path):
    root = _dataset(tmp_path / "ds", n_patients=12, split="test")
    kept = split_by_patient(root, seed=0, keep_existing=True)
    assert kept.changed == 0 and {r.split for r in _records(root)} == {"test"}
    resplit = split_by_patient(root, seed=0)
    assert resplit.changed > 0 and {r.split for r in _records(root)} == {"train", "val", "test"}


def test_keep_existing_assigns_the_rest_and_keeps_patients_together(tmp_path):
    root = _dataset(tmp_path / "ds", n_patients=30)
    records = _records(root)
    records[0] = records[0].model_copy(update={"split": "test"})  # one slice of patient P000 was pre-assigned
    write_records(root, records)
    split_by_patient(root, seed=1, keep_existing=True)
    after = _records(root)
    assert {r.split for r in after if r.patient_id == "P000"} == {"test"}
    assert all(len(s) == 1 for s in _patients_by_split(root).values())


def test_stratify_by_a_findings_attribute_and_bad_arguments(tmp_path):
    root = _dataset(tmp_path / "ds")
    report = split_by_patient(root, "0.5,0.25,0.25", seed=0, stratify_by="findings.tumor_type")
    assert report.stratified_by == "findings.tumor_type"
    with pytest.raises(ConfigError, match="cannot stratify by 'site'"):
        split_by_patient(root, stratify_by="site")
    with pytest.raises(ConfigError, match="must sum to 1"):
        split_by_patient(root, (0.8, 0.3, 0.1))
    with pytest.raises(ConfigError, match="three non-negative numbers"):
        parse_ratios((0.9, 0.1))
    with pytest.raises(ConfigError, match="three numbers like"):
        parse_ratios("0.8;0.1;0.1")
    assert parse_ratios("1,0,0") == (1.0, 0.0, 0.0)
