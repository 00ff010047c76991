"""Accuracy of the mask captioner against the phantom's exact ground truth.

Usage: python benchmarks/bench_mask_captioner.py [--n 2000] [--seed 1234] [--size 128]
Builds a phantom with a seed not used for calibration, captions it with the ``mask``
captioner and prints per-attribute accuracy (target: >= 95% for presence, hemisphere and
size category) with the most frequent confusions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from synthmed.caption import caption_dataset
from synthmed.data import ImageDataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.evaluate import attribute_agreement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ph"
        generate_phantom(PhantomConfig(out=root, n=args.n, size=args.size, seed=args.seed), progress=False)
        t0 = time.perf_counter()
        caption_dataset(root, "mask", progress=False)
        dt = time.perf_counter() - t0
        recs = ImageDataset(root).records
    result = attribute_agreement((r.findings, r.original_findings) for r in recs)
    print(f"mask captioner on phantom (n={args.n}, size={args.size}, seed={args.seed}); {args.n / dt:.0f} images/s")
    print(f"{'attribute':14s} {'accuracy':>8s} {'n':>6s}  top confusions (reference -> predicted: count)")
    for name, agg in result.items():
        if agg.n == 0 or agg.missing == agg.n:
            print(f"{name:14s} {'n/a':>8s} {agg.n:6d}  (not estimated by this captioner)")
            continue
        wrong = sorted(((k, v) for k, v in agg.confusion.items() if k[0] != k[1]), key=lambda kv: -kv[1])[:3]
        conf = ", ".join(f"{r}->{p}: {c}" for (r, p), c in wrong)
        print(f"{name:14s} {agg.accuracy:8.3f} {agg.n:6d}  {conf}")


if __name__ == "__main__":
    main()
