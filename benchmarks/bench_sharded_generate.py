"""Generation in one process against N processes under `accelerate launch` (each a shard; the main one merges).

Prints the wall time of each, images per second and the speed-up. Without CUDA the N processes are gloo CPU
processes with ``--threads-per-process`` threads each (default: the cores divided among them), timed against one
process using every core. The merged dataset is compared byte for byte with a one-process run at the same threads
per process (the thread count changes the order of floating-point reductions, so it is part of what makes an image).

    python benchmarks/bench_sharded_generate.py --model runs/demo/model [--images 16] [--processes 2] [--steps 25]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _generate_args(model: str, out: Path, images: int, steps: int, batch: int) -> list[str]:
    return ["generate", "--model", model, "--out", str(out), "--prompt", "Axial T1 contrast-enhanced MRI. A tumour in "
            "the left frontal lobe.", "--n-per-prompt", str(images), "--steps", str(steps), "--batch-size", str(batch),
            "--seed", "0", "--no-progress"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "images").iterdir())} | {
        "metadata.jsonl": (root / "metadata.jsonl").read_bytes()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads-per-process", type=int, default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    per = args.threads_per_process or max(1, cores // args.processes)
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp) / "one", Path(tmp) / "many"
        gen = _generate_args(args.model, one, args.images, args.steps, args.batch_size)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "synthmed.cli.main", *gen, "--device", "cpu"], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(cores)})
        t_one = time.perf_counter() - t0
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        gen = _generate_args(args.model, many, args.images, args.steps, args.batch_size)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                        str(args.processes), "--main_process_port", str(port), "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", str(per),
                        "-m", "synthmed.cli.main", *gen], check=True)
        t_many = time.perf_counter() - t0
        same_threads = Path(tmp) / "same-threads"
        subprocess.run([sys.executable, "-m", "synthmed.cli.main",
                        *_generate_args(args.model, same_threads, args.images, args.steps, args.batch_size),
                        "--device", "cpu"], check=True, env={**os.environ, "OMP_NUM_THREADS": str(per)})
        same = _snapshot(same_threads) == _snapshot(many)
    print(f"model {args.model}: {args.images} images, {args.steps} steps, batch {args.batch_size}, {cores} cores")
    print(f"one process ({cores} threads): {t_one:.1f} s, {args.images / t_one:.2f} images/s (wall, with start-up)")
    print(f"{args.processes} processes ({per} threads each): {t_many:.1f} s, {args.images / t_many:.2f} images/s")
    print(f"speed-up {t_one / t_many:.2f}x; byte-identical to one process at {per} threads: {same}")


if __name__ == "__main__":
    main()
