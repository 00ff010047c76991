"""Real processes: a training run killed mid-way resumes to the same weights; two-process DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from synthmed.testing.ldm import tiny_train_config
from synthmed.utils.configs import dump_yaml


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1"}


def _write_config(path: Path, data: Path, out: Path, text_encoder: Path, **kw) -> Path:
    cfg = tiny_train_config(data, out, text_encoder, **kw)
    dump_yaml(cfg, path)
    return path


def _train_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "synthmed.cli.main", "train", "ldm", "--config", str(config), *extra]


def _weights(model_dir: Path) -> dict:
    return {part: load_file(str(model_dir / part / "diffusion_pytorch_model.safetensors")) for part in ("unet", "vae")}


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_weights(disc_data, tiny_text_encoder, tmp_path):
    kw = dict(tensorboard=False, checkpoint_every=10, unet={"max_steps": 80})
    full_cfg = _write_config(tmp_path / "full.yaml", disc_data, tmp_path / "full", tiny_text_encoder, **kw)
    cut_cfg = _write_config(tmp_path / "cut.yaml", disc_data, tmp_path / "cut", tiny_text_encoder, **kw)
    subprocess.run(_train_cmd(full_cfg), check=True, env=_env(), capture_output=True, timeout=600)

    proc = subprocess.Popen(_train_cmd(cut_cfg), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = tmp_path / "cut" / "checkpoints" / "unet" / "step-00000010"
    deadline = time.monotonic() + 600
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), proc.stderr.read().decode()[-3000:]
    assert not (tmp_path / "cut" / "model_index.json").exists(), "the run ended before it was killed"
    state = json.loads((tmp_path / "cut" / "train_state.json").read_text())
    assert state["autoencoder"]["done"] and "unet" not in state

    res = subprocess.run(_train_cmd(cut_cfg, "--resume"), env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for part in full:
        assert full[part].keys() == cut[part].keys()
        for name, tensor in full[part].items():
            assert tensor.equal(cut[part][name]), f"{part}.{name} differs after resume"
    resumed = json.loads((tmp_path / "cut" / "synthmed.json").read_text())["stages"]["unet"]["resumed_from"]
    assert resumed is not None and 10 <= resumed < 80


def _launch(tmp_path, disc_data, tiny_text_encoder, name: str, flags: list[str]) -> dict:
    cfg = _write_config(tmp_path / f"{name}.yaml", disc_data, tmp_path / name, tiny_text_encoder, tensorboard=False)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *flags, "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
           "-m", "synthmed.cli.main", "train", "ldm", "--config", str(cfg)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert (tmp_path / name / "model_index.json").is_file()
    return json.loads((tmp_path / name / "synthmed.json").read_text())


def test_accelerate_launch_cpu(disc_data, tiny_text_encoder, tmp_path):
    # accelerate 1.x runs `launch --cpu` as a single process (several CPU processes need an MPI hostfile).
    prov = _launch(tmp_path, disc_data, tiny_text_encoder, "cpu", ["--cpu", "--num_processes", "2"])
    assert prov["stages"]["unet"]["steps"] == 6


def test_two_cpu_processes_train_data_parallel(disc_data, tiny_text_encoder, tmp_path):
    # On a machine without CUDA the multi-process launcher gives two gloo processes.
    import socket

    import torch

    if torch.cuda.is_available():
        pytest.skip("this checks the CPU (gloo) path")
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prov = _launch(tmp_path, disc_data, tiny_text_encoder, "ddp",
                   ["--multi_gpu", "--num_processes", "2", "--main_process_port", str(port)])
    assert prov["processes"] == 2
    assert prov["stages"]["unet"]["steps"] == 6
    assert prov["stages"]["unet"]["images_per_second"] > 0
