"""Output directories: one writer at a time, user files never lost, hand edits kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from synthmed.data import DatasetWriter, read_records
from synthmed.errors import ConfigError, DataError
from synthmed.utils import outdir

HOLD = textwrap.dedent("""
    import sys, time
    from synthmed.data import DatasetWriter
    w = DatasetWriter(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
""")


def _img():
    return np.full((6, 6), 100, np.uint8)


@pytest.fixture
def held_by_another_process(tmp_path):
    """A second process writing ``tmp_path / 'ds'`` (holds its lock until the test ends)."""
    target = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield target, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_with_the_holders_pid(held_by_another_process):
    target, pid = held_by_another_process
    with pytest.raises(outdir.DirectoryBusyError, match=f"being written by process {pid}"):
        DatasetWriter(target)


def test_a_second_cli_writer_exits_2_and_writes_nothing(held_by_another_process):
    target, pid = held_by_another_process
    proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "data", "phantom", "--out", str(target),
                           "--n", "4", "--size", "32", "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"being written by process {pid}" in proc.stderr and "Traceback" not in proc.stderr
    assert read_records(target) == []  # the holder's empty dataset, untouched


def test_the_lock_goes_with_its_process(tmp_path):
    subprocess.run([sys.executable, "-c", "import sys; from synthmed.data import DatasetWriter; "
                    "w = DatasetWriter(sys.argv[1]); w.add('a.png', __import__('numpy').zeros((4, 4), 'uint8'))",
                    str(tmp_path / "ds")], check=True, timeout=120)
    with DatasetWriter(tmp_path / "ds") as w:  # the first process exited without closing: no stale lock
        w.add("b.png", _img())
    assert [r.file_name for r in read_records(tmp_path / "ds")] == ["images/a.png", "images/b.png"]


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with outdir.exclusive(tmp_path / "d"), DatasetWriter(tmp_path / "d") as w:
        w.add("a.png", _img())
    assert str((tmp_path / "d").resolve()) not in outdir._held


def test_a_foreign_directory_is_refused_and_its_files_kept(tmp_path):
    foreign = tmp_path / "mine"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "P00001_s00.png").write_bytes(b"my own picture")
    with pytest.raises(DataError, match="not a synthmed dataset"):
        DatasetWriter(foreign)
    proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "data", "phantom", "--out", str(foreign),
                           "--n", "4", "--size", "32", "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a synthmed dataset" in proc.stderr
    assert (foreign / "images" / "P00001_s00.png").read_bytes() == b"my own picture"
    assert not (foreign / "metadata.jsonl").exists()


def test_a_valid_last_row_without_newline_is_kept(tmp_path, caplog):
    with DatasetWriter(tmp_path) as w:
        w.add("a.png", _img())
        w.add("b.png", _img(), text="original")
    meta = tmp_path / "metadata.jsonl"
    lines = meta.read_text().splitlines()
    meta.write_text(lines[0] + "\n" + lines[1].replace("original", "edited by hand"))  # saved without a newline
    with DatasetWriter(tmp_path) as w:
        w.add("c.png", _img())
    assert [r.text for r in read_records(tmp_path)][1:] == ["edited by hand", None]
    assert "removing an incomplete last line" not in caplog.text


def test_overwrite_removes_only_what_synthmed_wrote(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / "synthmed.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    (out / "my-folder").mkdir()
    with pytest.raises(ConfigError, match="not empty"):
        outdir.prepare_out_dir(out, resume=False, overwrite=False, owned=("checkpoints", "synthmed.json"))
    outdir.prepare_out_dir(out, resume=False, overwrite=True, owned=("checkpoints", "synthmed.json"))
    assert sorted(p.name for p in out.iterdir()) == [".synthmed", "my-folder", "notes.txt"]  # .synthmed: the lock


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_respect_the_umask(tmp_path, umask):
    import os
    import stat

    import torch

    from synthmed.data import write_records
    from synthmed.models.ldm import AutoencoderConfig, build_autoencoder
    from synthmed.utils.provenance import write_json_atomic
    from synthmed.utils.tmpfiles import apply_umask, save_safetensors

    old = os.umask(umask)
    try:
        with DatasetWriter(tmp_path / "ds") as w:
            w.add("a.png", _img(), mask=np.zeros((6, 6), bool))
        write_records(tmp_path / "ds", read_records(tmp_path / "ds"))  # what caption does to metadata.jsonl
        write_json_atomic(tmp_path / "ds" / "synthmed.json", {"x": 1})
        save_safetensors({"w": torch.zeros(2)}, tmp_path / "ds" / "w.safetensors")  # safetensors alone: 0600
        save_pipeline_part = build_autoencoder(AutoencoderConfig(block_out_channels=[8], norm_num_groups=4), 1)
        save_pipeline_part.save_pretrained(tmp_path / "ds" / "vae")
        apply_umask(tmp_path / "ds" / "vae")
    finally:
        os.umask(old)
    for name in ("metadata.jsonl", "images/a.png", "masks/a.png", "synthmed.json", "w.safetensors",
                 "vae/diffusion_pytorch_model.safetensors", "vae/config.json"):
        mode = stat.S_IMODE((tmp_path / "ds" / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))
