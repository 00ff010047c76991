"""Sharded generation: the union of shards is the one-process dataset byte for byte; a killed shard resumes alone;
the merge leaves no duplicate and refuses what is incomplete or mismatched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from synthmed.data.dataset import read_records
from synthmed.errors import ConfigError, DataError
from synthmed.generate import GenerateConfig, generate, merge
from synthmed.generate import run as run_module
from synthmed.utils import outdir


def _cfg(model, out, **kw) -> GenerateConfig:
    base = {"model": str(model), "out": out, "findings_grid": "presence x hemisphere", "n_per_prompt": 2, "steps": 2,
            "batch_size": 2, "seed": 3, "progress": False, "device": "cpu"}  # 4 prompts x 2 = 8 images, 4 batches
    return GenerateConfig.model_validate({**base, **kw})


def _snapshot(root):
    """Rows and image bytes of a dataset, in order."""
    meta = (root / "metadata.jsonl").read_text().splitlines()
    return meta, {r.file_name: (root / r.file_name).read_bytes() for r in read_records(root)}


@pytest.fixture(scope="module")
def one_process(tiny_pipeline, tmp_path_factory):
    return _snapshot(generate(_cfg(tiny_pipeline, tmp_path_factory.mktemp("one") / "d")))


def test_shards_merge_to_the_one_process_dataset(tiny_pipeline, one_process, tmp_path):
    out = tmp_path / "sharded"
    for shard in (2, 0, 1):  # any order
        made = generate(_cfg(tiny_pipeline, out, num_shards=3, shard=shard))
        assert made == out / "shards" / f"{shard:03d}-of-003"
    assert not (out / "metadata.jsonl").exists()
    assert merge(out) == out
    assert _snapshot(out) == one_process
    assert not (out / "shards").exists() and len(list((out / "images").iterdir())) == 8
    with pytest.raises(DataError, match="nothing to merge"):
        merge(out)
    # the merged folder is a finished run: the same one-process command resumes it and makes nothing
    generate(_cfg(tiny_pipeline, out))
    assert _snapshot(out) == one_process


def test_a_killed_shard_resumes_alone(tiny_pipeline, one_process, tmp_path, monkeypatch):
    out = tmp_path / "s"
    generate(_cfg(tiny_pipeline, out, num_shards=2, shard=0))
    calls = []
    real = run_module.sample_images

    def dies_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed mid-shard
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "sample_images", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        generate(_cfg(tiny_pipeline, out, num_shards=2, shard=1))
    with pytest.raises(DataError, match="shard 1 of 2 has 2 of its 4 images: rerun it with --num-shards 2 --shard 1"):
        merge(out)
    calls.clear()
    monkeypatch.setattr(run_module, "sample_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    generate(_cfg(tiny_pipeline, out, num_shards=2, shard=1))
    assert len(calls) == 1  # only the batch the killed run had not written
    merge(out)
    assert _snapshot(out) == one_process


def test_merge_refuses_missing_or_mismatched_shards(tiny_pipeline, tmp_path):
    out = tmp_path / "s"
    generate(_cfg(tiny_pipeline, out, num_shards=3, shard=0))
    with pytest.raises(DataError, match="shard 1 of 3 has not run"):
        merge(out)
    generate(_cfg(tiny_pipeline, out, num_shards=3, shard=1, seed=4))
    generate(_cfg(tiny_pipeline, out, num_shards=3, shard=2))
    with pytest.raises(DataError, match="other settings") as err:
        merge(out)
    assert "001-of-003" in str(err.value)
    with pytest.raises(ConfigError, match="holds the shards"):
        generate(_cfg(tiny_pipeline, out))  # a one-process run into a sharded folder


def test_shards_lock_their_own_folders(tiny_pipeline, tmp_path):
    out = tmp_path / "s"
    generate(_cfg(tiny_pipeline, out, num_shards=2, shard=0))
    # another process writing shard 0 (simulated by holding its lock) does not stop shard 1 ...
    with outdir.exclusive(out / "shards" / "000-of-002"):
        generate(_cfg(tiny_pipeline, out, num_shards=2, shard=1))
    # ... but a second writer of the same shard is stopped
    held = subprocess.Popen([sys.executable, "-c", "import sys, time; from synthmed.utils import outdir; "
                             f"outdir.acquire({str(out / 'shards' / '001-of-002')!r}); print('held', flush=True); "
                             "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="being written by process"):
            generate(_cfg(tiny_pipeline, out, num_shards=2, shard=1))
    finally:
        held.kill()
        held.wait()


def test_shard_settings_are_checked():
    with pytest.raises(ValueError, match="needs shard"):
        GenerateConfig(model="m", out="o", prompts=["p"], num_shards=2)
    with pytest.raises(ValueError, match="does not exist"):
        GenerateConfig(model="m", out="o", prompts=["p"], num_shards=2, shard=2)


def test_accelerate_launch_two_processes(tiny_pipeline, one_process, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2 -m synthmed.cli.main generate ...` on a CPU: each process
    makes a shard, the main one merges; the result is the one-process dataset."""
    import socket

    out = tmp_path / "acc"
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Without CUDA, --multi_gpu gives two gloo CPU processes (accelerate 1.x runs `--cpu` as one process).
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--main_process_port", str(port), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend",
           "no", "--num_cpu_threads_per_process", "1", "-m", "synthmed.cli.main", "generate",
           "--model", str(tiny_pipeline), "--out", str(out), "--findings-grid", "presence x hemisphere",
           "--n-per-prompt", "2", "--steps", "2", "--batch-size", "2", "--seed", "3", "--device", "auto",
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU (gloo) path")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _snapshot(out) == one_process and not (out / "shards").exists()
    assert json.loads((out / "generate.json").read_text())["merged_from_shards"] == 2  # two shards, merged


def test_cli_shards_and_merge(tiny_pipeline, one_process, tmp_path):
    from typer.testing import CliRunner

    from synthmed.cli.main import app

    out = tmp_path / "cli"
    common = ["generate", "--model", str(tiny_pipeline), "--out", str(out), "--findings-grid", "presence x hemisphere",
              "--n-per-prompt", "2", "--steps", "2", "--batch-size", "2", "--seed", "3", "--device", "cpu",
              "--no-progress", "--num-shards", "2"]
    runner = CliRunner()
    for shard in ("0", "1"):
        res = runner.invoke(app, [*common, "--shard", shard])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["generate", "--merge", str(out)])
    assert res.exit_code == 0 and "merged dataset" in res.output
    assert _snapshot(out) == one_process
    res = runner.invoke(app, ["generate", "--out", str(out)])
    assert isinstance(res.exception, ConfigError) and "--model is required" in str(res.exception)

