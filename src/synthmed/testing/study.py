"""Helpers of the reader-study tests: a generated-style dataset, and `synthmed study serve` in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from scipy.ndimage import gaussian_filter

from synthmed.data.dataset import DatasetWriter, ImageDataset


def write_fake(real: Path, out: Path, *, bits: int = 8, rgb: bool = False) -> Path:
    """A generated-style dataset: each real image blurred, rows with prompt and requested_findings."""
    ds = ImageDataset(real)
    with DatasetWriter(out) as w:
        for i, rec in enumerate(ds):
            img = gaussian_filter(ds.image(rec).astype(np.float64), 1.2)
            arr = (np.clip(img, 0, 255) * (257 if bits == 16 else 1)).astype(np.uint16 if bits == 16 else np.uint8)
            if rgb:
                arr = np.repeat(arr[..., None], 3, axis=2)
            w.add(f"gen_{i:04d}.png", arr, prompt=rec.text, requested_findings=rec.findings, seed=i,
                  source="synthetic")
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(study: Path, port: int, *args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """``synthmed study serve`` in a child process; returns it and the reader links it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "synthmed.cli.main", "study", "serve", str(study), "--port",
                             str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "400"})
    links: dict[str, str] = {}
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if ": http://" in line:
            name, url = line.strip().split(": ", 1)
            links[name] = url
        if line.startswith("Ctrl-C"):
            break
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, links
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the study server did not start: {proc.stdout.read()}")


def stop(proc: subprocess.Popen) -> None:
    """Kill the server (if it still runs) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
