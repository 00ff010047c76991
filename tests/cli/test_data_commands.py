"""``synthmed data import | split | stats`` through the command line."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict

import numpy as np
from PIL import Image
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from synthmed.cli.main import app
from synthmed.data import read_records
from synthmed.errors import ConfigError

runner = CliRunner()


def _kaggle(root):
    rng = np.random.default_rng(0)
    for split in ("Training", "Testing"):
        for cls in ("glioma", "notumor"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
    return root


def test_import_split_stats(tmp_path):
    src, out = _kaggle(tmp_path / "kaggle"), tmp_path / "ds"
    r = runner.invoke(app, ["data", "import", "--format", "folder", "--src", str(src), "--out", str(out),
                            "--size", "16"])
    assert r.exit_code == 0, r.output
    assert "import folder" in r.output and "12 written, 0 already present, 0 skipped" in r.output
    assert {rec.split for rec in read_records(out)} == {"train", "test"}

    r = runner.invoke(app, ["data", "split", str(out), "--by", "patient", "--ratios", "0.5,0.25,0.25", "--seed", "3",
                            "--stratify", "label"])
    assert r.exit_code == 0, r.output
    assert "train: 6 rows / 6 patients, val: 3 rows / 3 patients, test: 3 rows / 3 patients" in r.output
    splits_of = defaultdict(set)
    for rec in read_records(out):
        splits_of[rec.patient_id or rec.file_name].add(rec.split)
    assert all(len(s) == 1 for s in splits_of.values())

    r = runner.invoke(app, ["data", "split", str(out), "--keep-existing"])
    assert r.exit_code == 0 and "0 rows changed, 12 kept" in r.output

    r = runner.invoke(app, ["data", "stats", str(out), "--json", str(tmp_path / "stats.json")])
    assert r.exit_code == 0, r.output
    assert "labels by split" in r.output and "near-duplicates across splits" in r.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["rows"] == 12 and stats["images"]["sizes"] == {"16x16": 12}


def test_format_specific_flags_reach_the_importer(tmp_path):
    (tmp_path / "dcm").mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "dcm" / "a.dcm")
    r = runner.invoke(app, ["data", "import", "-f", "dicom", "--src", str(tmp_path / "dcm"), "--out",
                            str(tmp_path / "out"), "--keep-patient-ids", "--dicom-window", "--bits", "16"])
    assert r.exit_code == 0, r.output
    rec = read_records(tmp_path / "out")[0]
    assert rec.patient_id == "4MR1" and rec.windowing["center"] == 600 and rec.windowing["bits"] == 16


def test_bad_flags_raise_errors_that_list_the_valid_choices(tmp_path):
    r = runner.invoke(app, ["data", "import", "-f", "png", "--src", str(tmp_path), "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, ConfigError) and "valid formats: folder, figshare, dicom, nifti, csv" in str(
        r.exception)
    r = runner.invoke(app, ["data", "import", "-f", "figshare", "--src", str(tmp_path), "--out", str(tmp_path / "o"),
                            "--axis", "1"])
    assert isinstance(r.exception, ConfigError) and "do not apply to format 'figshare'" in str(r.exception)
    r = runner.invoke(app, ["data", "split", str(tmp_path), "--by", "study"])
    assert isinstance(r.exception, ConfigError) and "valid: patient" in str(r.exception)
