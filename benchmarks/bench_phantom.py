"""Throughput of the phantom benchmark generator.

Usage: python benchmarks/bench_phantom.py [--n 2000] [--size 128] [--workers 0]
Prints slices per second and the wall time (target: 2,000 slices at 128 px in < 60 s on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.data.phantom.anatomy import load_template


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    load_template()
    t_template = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        generate_phantom(PhantomConfig(out=Path(tmp) / "ph", n=args.n, size=args.size, seed=args.seed,
                                       workers=args.workers), progress=False)
        dt = time.perf_counter() - t1
    print(f"template load: {t_template:.1f} s (once per process)")
    print(f"phantom: {args.n} slices at {args.size} px in {dt:.1f} s = {args.n / dt:.1f} slices/s "
          f"(total with template load {dt + t_template:.1f} s)")


if __name__ == "__main__":
    main()
