"""`synthmed study create`: a balanced, seeded, shuffled set; nothing in the files reveals an image's origin."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthmed.data.dataset import read_records
from synthmed.data.imageio import load_image
from synthmed.errors import ConfigError, DataError
from synthmed.study import StudyCreateConfig, create_study
from synthmed.study.layout import image_path, read_key, read_settings
from synthmed.study.store import AnswerStore
from synthmed.testing.study import write_fake


def png_chunks(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    names, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        names.append(data[pos + 4:pos + 8].decode("ascii"))
        pos += 12 + length
    return names


def _make(real, fake, out, **kw):
    return create_study(StudyCreateConfig(real=real, fake=fake, out=out, **kw))


def test_balanced_seeded_shuffled_and_faithful(study_data, tmp_path):
    real, fake = study_data
    a = _make(real, fake, tmp_path / "a", n_real=8, n_fake=8, seed=4)
    b = _make(real, fake, tmp_path / "b", n_real=8, n_fake=8, seed=4)
    c = _make(real, fake, tmp_path / "c", n_real=8, n_fake=8, seed=5)
    key_a, key_b, key_c = (read_key(s) for s in (a, b, c))
    settings = read_settings(a)
    assert len(settings.items) == 16 and set(settings.items) == set(key_a.items)
    origins = [key_a.items[i].origin for i in settings.items]
    assert origins.count("real") == 8 and origins.count("synthetic") == 8
    assert origins != sorted(origins) and origins != sorted(origins, reverse=True)  # shuffled
    # the same seed draws the same source rows in the same order; the ids are fresh random ones
    def sources(study, key):
        return [(key.items[i].origin, key.items[i].file_name) for i in read_settings(study).items]
    assert sources(a, key_a) == sources(b, key_b) != sources(c, key_c)
    assert not set(key_a.items) & set(key_b.items)
    # each image holds exactly its source's pixels; its findings are the row's (requested ones when generated)
    rows = {("real", r.file_name): r for r in read_records(real)} | {
        ("synthetic", r.file_name): r for r in read_records(fake)}
    for item in settings.items:
        entry = key_a.items[item]
        src = (real if entry.origin == "real" else fake) / entry.file_name
        np.testing.assert_array_equal(load_image(image_path(a, item)), load_image(src))
        row = rows[(entry.origin, entry.file_name)]
        want = row.findings if entry.origin == "real" else row.requested_findings
        assert entry.findings == want.model_dump(mode="json")


def test_no_metadata_and_one_file_size(study_data, tmp_path):
    real, fake = study_data
    # give the real images a text chunk, as many scanners' exports and generators' PNGs have
    tagged = tmp_path / "tagged"
    import shutil

    shutil.copytree(real, tagged)
    from PIL import PngImagePlugin

    for rec in read_records(tagged):
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "real scan, patient 7")
        Image.open(tagged / rec.file_name).save(tagged / rec.file_name, pnginfo=info)
    study = _make(tagged, fake, tmp_path / "s", n_real=10, n_fake=10)
    files = sorted((study / "images").iterdir())
    assert len(files) == 20
    assert {f.stat().st_size for f in files} == {files[0].stat().st_size}
    for f in files:
        assert png_chunks(f) == ["IHDR", "IDAT", "IEND"], f
        assert len(f.stem) == 16 and all(ch in "0123456789abcdef" for ch in f.stem)
    assert "patient" not in json.dumps(json.loads((study / "study.json").read_text()))


def test_16_bit_and_grey_rgb_kept(study_data, tmp_path):
    real, _ = study_data
    real16 = write_fake(real, tmp_path / "real16", bits=16)
    fake16 = write_fake(real, tmp_path / "fake16", bits=16)
    study = _make(real16, fake16, tmp_path / "s16", n_real=3, n_fake=3)
    fmt = read_settings(study).image_format
    assert (fmt.bits, fmt.channels) == (16, 1)
    key = read_key(study)
    for item, entry in key.items.items():
        src = (real16 if entry.origin == "real" else fake16) / entry.file_name
        got = load_image(image_path(study, item))
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, load_image(src))
    # generated images saved as RGB with equal channels are read as the greyscale they are
    rgb = write_fake(real, tmp_path / "rgb", rgb=True)
    study = _make(real, rgb, tmp_path / "srgb", n_real=3, n_fake=3)
    assert read_settings(study).image_format.channels == 1


def test_formats_that_would_give_the_origin_away_are_refused(study_data, tmp_path):
    real, _ = study_data
    fake16 = write_fake(real, tmp_path / "fake16", bits=16)
    with pytest.raises(DataError, match="bit depth") as err:
        _make(real, fake16, tmp_path / "s", n_real=3, n_fake=3)
    assert "fake16" in str(err.value) or "real" in str(err.value)
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_sizes_splits_and_bad_requests(study_data, tmp_path):
    real, fake = study_data
    s = _make(real, fake, tmp_path / "d")
    assert len(read_settings(s).items) == 100  # 50 of each by default
    with pytest.raises(DataError, match="--n-fake 61") as err:
        _make(real, fake, tmp_path / "e", n_real=5, n_fake=61)
    assert str(fake) in str(err.value)
    s = _make(real, fake, tmp_path / "f", n_real=4, real_split="test")
    test_rows = {r.file_name for r in read_records(real) if r.split == "test"}
    key = read_key(s)
    assert {e.file_name for e in key.items.values() if e.origin == "real"} <= test_rows
    assert sum(e.origin == "synthetic" for e in key.items.values()) == 4
    with pytest.raises(DataError, match="split 'nope'"):
        _make(real, fake, tmp_path / "g", real_split="nope")
    with pytest.raises(ValueError, match="questions"):
        StudyCreateConfig(real=real, fake=fake, out=tmp_path / "h", questions=["colour"])


def test_existing_studies_are_protected(study_data, tmp_path):
    real, fake = study_data
    s = _make(real, fake, tmp_path / "s", n_real=2, n_fake=2)
    before = read_settings(s).items
    with pytest.raises(ConfigError, match="--overwrite"):
        _make(real, fake, s, n_real=2, n_fake=2)
    assert read_settings(s).items == before
    s = _make(real, fake, s, n_real=3, n_fake=3, overwrite=True)
    assert len(read_settings(s).items) == 6
    AnswerStore(s).add_readers(["ann"], read_settings(s))
    with pytest.raises(ConfigError, match="already has answers"):
        _make(real, fake, s, n_real=2, n_fake=2, overwrite=True)
    assert len(read_settings(s).items) == 6
