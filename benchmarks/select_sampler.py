"""Choose a trained LDM's sampler and guidance on the validation split, never on the test split.

Usage::

    python benchmarks/select_sampler.py --model runs/demo/model --data runs/demo/data/real --work runs/select \
        [--grid "euler-ancestral:4,5,6,7;dpm-solver++-sde:5,6"] [--n 256] [--seed 1] [--json out.json]

For every (sampler, guidance) of ``--grid`` this generates ``--n`` images (25 steps) for
prompts drawn from the findings of the real data's ``val`` split, with generation seed
``--seed`` (the demo reports seed 0 on prompts drawn from the whole set, so neither the
prompts' draw nor a single image is shared), and scores them:

* prompt adherence by the findings judge (presence, hemisphere, lobe; Wilson 95 % intervals);
* Fréchet distance and precision/recall (k = 3, EfficientNet-Lite0) against the real ``val``
  images only, beside their real-vs-real floor.

The chosen setting has the highest mean of presence, hemisphere and lobe adherence; FD breaks
ties within 0.01. Every generated set is kept under ``--work`` (rerunning resumes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthmed.data.dataset import DatasetWriter, ImageDataset
from synthmed.evaluate.adherence import AdherenceConfig, evaluate_adherence
from synthmed.evaluate.fidelity_run import evaluate_fidelity
from synthmed.generate import GenerateConfig, generate
from synthmed.pipeline.demo import DEMO_JUDGE

ATTRIBUTES = ("tumor_present", "hemisphere", "lobe")


def split_view(data: Path, split: str, out: Path) -> Path:
    """A copy of the rows (and images) of one split of ``data``."""
    if (out / "metadata.jsonl").is_file():
        return out
    ds = ImageDataset(data)
    writer = DatasetWriter(out)
    for r in ds.records:
        if r.split == split:
            writer.add(Path(r.file_name).name, ds.image(r), **r.model_dump(exclude={"file_name", "mask_file_name"}))
    return out


def validation_prompts(view: Path, n: int, seed: int, out: Path) -> Path:
    """``n`` prompts drawn (seeded, with replacement past the row count) from the view's findings."""
    from synthmed.generate.prompts import balanced_like

    specs = balanced_like(view, num_prompts=n, seed=seed)
    out.write_text("".join(s.text + "\n" for s in specs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="the captioned real dataset (with splits)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--grid", default="euler-ancestral:4,5,6,7;dpm-solver++-sde:5,6")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--judge", default=DEMO_JUDGE)
    ap.add_argument("--split", default="val")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    view = split_view(args.data, args.split, args.work / f"real-{args.split}")
    prompts = validation_prompts(view, args.n, args.seed, args.work / "prompts.txt")
    rows = []
    for item in args.grid.split(";"):
        scheduler, scales = item.split(":")
        for scale in (float(s) for s in scales.split(",")):
            out = args.work / f"{scheduler}-g{scale:g}"
            generate(GenerateConfig(model=str(args.model), out=out, prompts_file=prompts, steps=args.steps,
                                    guidance_scale=scale, scheduler=scheduler, seed=args.seed, batch_size=16,
                                    progress=False))
            adh = evaluate_adherence(AdherenceConfig(fake=out, judge=args.judge), progress=False).to_result()
            fid = evaluate_fidelity({"real": view, "fake": out, "features": "efficientnet-lite0", "bootstrap": 0,
                                     "per_finding": False})
            row = {"scheduler": scheduler, "guidance": scale,
                   **{a: adh.attributes[a].model_dump(include={"value", "ci95", "n"}) for a in ATTRIBUTES},
                   "fd": fid.metrics["fid"].value, "precision": fid.metrics["precision"].value,
                   "recall": fid.metrics["recall"].value,
                   "fd_floor": fid.real_vs_real.metrics["fid"].value if fid.real_vs_real else None}
            row["score"] = sum(row[a]["value"] for a in ATTRIBUTES) / len(ATTRIBUTES)
            rows.append(row)
            print(f"{scheduler:18s} g{scale:<4g} presence {row['tumor_present']['value']:.3f} "
                  f"hemisphere {row['hemisphere']['value']:.3f} lobe {row['lobe']['value']:.3f} "
                  f"FD {row['fd']:.1f} (floor {row['fd_floor']:.1f}) P {row['precision']:.3f} "
                  f"R {row['recall']:.3f}", flush=True)
    best = max(rows, key=lambda r: (round(r["score"], 2), -r["fd"]))
    print(f"chosen on {args.split}: {best['scheduler']} guidance {best['guidance']:g} (mean adherence "
          f"{best['score']:.3f}, FD {best['fd']:.1f})")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "split": args.split, "seed": args.seed,
                                         "n": args.n, "rows": rows, "chosen": best}, indent=2))


if __name__ == "__main__":
    main()
