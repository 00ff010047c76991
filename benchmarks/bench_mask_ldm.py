"""The mask-conditioned LDM's figures in docs/mask-conditioning.md, end to end, from a finished ``synthmed demo`` run.

Trains the LDM of configs/ldm-mask-phantom.yaml on the demo's real data (the demo's model, conditioned on
each slice's head outline and lesion mask), generates the demo's 256 evaluation prompts and seeds (seed 0,
Euler ancestral, 25 steps, guidance 4) each with a mask drawn from its findings, and prints mask adherence
(read by a lesion segmenter; trained here unless --segmenter gives one), the findings judge's adherence and
EfficientNet-Lite0 fidelity. Steps whose output exists are skipped, so a killed run continues.

    python benchmarks/bench_mask_ldm.py --demo runs/demo --work runs/bench_mask_ldm [--segmenter runs/seg]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mask_conditioning import ROOT, figures, synthmed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `synthmed demo` run directory")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--segmenter", type=Path, help="a trained `synthmed train segmenter` folder to read lesions with")
    ap.add_argument("--guidance", type=float, default=4.0)
    args = ap.parse_args()
    demo, work = args.demo.resolve(), args.work.resolve()
    real = demo / "data" / "real"
    work.mkdir(parents=True, exist_ok=True)
    model, segmenter, gen = work / "model", args.segmenter or work / "segmenter", work / "eval"
    if not (model / "model_index.json").is_file():
        synthmed("train", "ldm", "--config", str(ROOT / "configs/ldm-mask-phantom.yaml"), "--data", str(real),
                 "--out", str(model), "--resume", "--no-progress")
    if not (segmenter / "config.json").is_file():
        synthmed("train", "segmenter", "--data", str(real), "--out", str(segmenter), "--max-steps", "2500", "--resume")
    synthmed("generate", "--model", str(model), "--masks-from-findings", "--findings-grid", f"balanced:{real}",
             "--num-prompts", "256", "--guidance-scale", str(args.guidance), "--scheduler", "euler-ancestral",
             "--batch-size", "16", "--seed", "0", "--out", str(gen), "--no-progress")
    synthmed("evaluate", "mask-adherence", "--fake", str(gen), "--segmenter", str(segmenter), "--real", str(real),
             "--out", str(work / "mask_adherence.json"))
    synthmed("evaluate", "adherence", "--fake", str(gen), "--judge", "builtin:phantom-128-robust", "--out",
             str(work / "adherence.json"))
    synthmed("evaluate", "fidelity", "--real", str(real), "--fake", str(gen), "--features", "efficientnet-lite0",
             "--bootstrap", "50", "--out", str(work / "fidelity.json"))
    ma = json.loads((work / "mask_adherence.json").read_text())
    print("mask adherence, generated:", figures(work / "mask_adherence.json"))
    for group, block in ma["groups"].items():
        print(f"  {group}:", {k: round(v["value"], 3) for k, v in block.items() if v.get("value") is not None})
    print("mask adherence, real test:", figures(work / "mask_adherence.json", "reference"))
    print("judge adherence:", figures(work / "adherence.json", "attributes"))
    print("fidelity:", figures(work / "fidelity.json"))


if __name__ == "__main__":
    main()
