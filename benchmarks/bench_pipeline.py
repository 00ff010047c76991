"""Benchmark of ``synthmed run`` and ``synthmed report`` on a tiny study (CPU, a few seconds).

Prints: the time to check each example config, the first run vs an unchanged rerun (all
stages skipped) vs a rerun after one setting changed, and the report's build time and size.

    python benchmarks/bench_pipeline.py [--images 32] [--size 64]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from synthmed.pipeline.config import load_pipeline_config
from synthmed.pipeline.runner import check_pipeline, run_pipeline
from synthmed.report import write_report
from synthmed.testing.pipelines import write_tiny_sd


def study(model: Path, n: int, size: int, per_caption: int = 2) -> dict:
    return {"name": "bench", "seed": 0, "stages": [
        {"name": "phantom", "kind": "data.phantom", "settings": {"n": n, "size": size}},
        {"name": "caption", "kind": "caption", "settings": {"data": "${phantom}"}},
        {"name": "paraphrase", "kind": "paraphrase", "settings": {"data": "${caption}", "per_caption": per_caption}},
        {"name": "generate", "kind": "generate", "settings": {"model": str(model), "num_prompts": 16, "steps": 2,
                                                              "findings_grid": "balanced:${paraphrase}",
                                                              "progress": False}},
        {"name": "fidelity", "kind": "evaluate.fidelity",
         "settings": {"real": "${paraphrase}", "fake": "${generate}", "features": "efficientnet-lite0",
                      "bootstrap": 0}},
    ]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    for path in sorted(Path(__file__).parents[1].glob("configs/run-*.yaml")):
        t0 = time.perf_counter()
        cfg = load_pipeline_config(path)
        check_pipeline(cfg)
        print(f"check {path.name:<36} {len(cfg.stages):>2} stages  {time.perf_counter() - t0:6.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        model = write_tiny_sd(Path(tmp) / "sd")
        run = Path(tmp) / "run"
        for label, per_caption in (("first run", 2), ("unchanged rerun", 2), ("paraphrase changed", 3)):
            t0 = time.perf_counter()
            res = run_pipeline(load_pipeline_config(data=study(model, args.images, args.size, per_caption)), run)
            print(f"{label:<20} {time.perf_counter() - t0:6.2f} s  ran={res.ran} skipped={res.skipped}")
        t0 = time.perf_counter()
        path = write_report(run)
        print(f"report              {time.perf_counter() - t0:6.2f} s  {path.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
