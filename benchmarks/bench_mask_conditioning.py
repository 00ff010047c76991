"""The figures of docs/mask-conditioning.md, end to end, from a finished ``synthmed demo`` run.

Trains the ControlNet (configs/controlnet-ldm-phantom.yaml) and the segmenter on the demo's real data,
chooses the ControlNet scale on validation prompts (seed 100), generates the evaluation set (the demo's
256 prompts and seeds, seed 0) and 840 training pairs (seed 2), and prints mask adherence (generated and
the real test reference), the judge's adherence and the localisation TSTR table. Every step resumes or is
skipped when its output exists, so a killed run continues. About 75 minutes on a 2-core CPU.

    python benchmarks/bench_mask_conditioning.py --demo runs/demo --work runs/bench_masks
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def synthmed(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "synthmed.cli.main", *args], check=True)


def generate(demo: Path, controlnet: Path, out: Path, *, scale: float, prompts: int, seed: int) -> None:
    if (out / "metadata.jsonl").is_file() and sum(1 for _ in open(out / "metadata.jsonl")) == prompts:
        return
    synthmed("generate", "--model", str(demo / "model"), "--controlnet", str(controlnet), "--masks-from-findings",
             "--controlnet-scale", str(scale), "--findings-grid", f"balanced:{demo / 'data/real'}", "--num-prompts",
             str(prompts), "--guidance-scale", "4", "--scheduler", "euler-ancestral", "--batch-size", "16",
             "--seed", str(seed), "--out", str(out), "--no-progress")


def figures(path: Path, block: str = "metrics") -> dict:
    data = json.loads(path.read_text())[block]
    return {k: round(v["value"], 3) for k, v in data.items() if v.get("value") is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `synthmed demo` run directory")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    args = ap.parse_args()
    demo, work = args.demo.resolve(), args.work.resolve()
    real = demo / "data" / "real"
    work.mkdir(parents=True, exist_ok=True)
    controlnet, segmenter = work / "controlnet", work / "segmenter"
    if not (controlnet / "config.json").is_file():
        synthmed("train", "controlnet", "--config", str(ROOT / "configs/controlnet-ldm-phantom.yaml"), "--base",
                 str(demo / "model"), "--data", str(real), "--out", str(controlnet), "--resume")
    if not (segmenter / "config.json").is_file():
        synthmed("train", "segmenter", "--data", str(real), "--out", str(segmenter), "--max-steps", "2500", "--resume")

    chosen, best = None, -1.0
    for scale in args.scales:  # chosen on validation prompts and seeds, never on the evaluation set
        val = work / f"val-scale{scale:g}"
        generate(demo, controlnet, val, scale=scale, prompts=64, seed=100)
        synthmed("evaluate", "mask-adherence", "--fake", str(val), "--segmenter", str(segmenter), "--out",
                 str(val) + ".json")
        dice = figures(Path(str(val) + ".json"))["dice"]
        print(f"validation, scale {scale:g}: Dice {dice:.3f}")
        if dice > best:
            chosen, best = scale, dice
    test, pairs = work / "eval", work / "train-pairs"
    generate(demo, controlnet, test, scale=chosen, prompts=256, seed=0)
    synthmed("evaluate", "mask-adherence", "--fake", str(test), "--segmenter", str(segmenter), "--real", str(real),
             "--out", str(work / "mask_adherence.json"))
    synthmed("evaluate", "adherence", "--fake", str(test), "--judge", "builtin:phantom-128-robust", "--out",
             str(work / "adherence.json"))
    generate(demo, controlnet, pairs, scale=chosen, prompts=840, seed=2)
    config = work / "tstr.yaml"
    config.write_text("conditions: [trtr, tstr, low, low+synth]\nlow_fraction: 0.1\nbatch_size: 8\nprogress: false\n")
    synthmed("evaluate", "localization-tstr", "--real", str(real), "--synthetic", str(pairs), "--steps", "800",
             "--config", str(config), "--out", str(work / "tstr.json"))
    print(f"ControlNet scale chosen on validation: {chosen:g}")
    print("mask adherence, generated:", figures(work / "mask_adherence.json"))
    print("mask adherence, real test:", figures(work / "mask_adherence.json", "reference"))
    tstr = json.loads((work / "tstr.json").read_text())
    for name, block in (*tstr["conditions"].items(), *tstr["comparisons"].items()):
        print(name, {k: round(v["value"], 3) for k, v in block.items()})


if __name__ == "__main__":
    main()
