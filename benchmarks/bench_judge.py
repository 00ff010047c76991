"""Train the findings judge on the phantom benchmark and measure it; then score two stand-in generators.

Usage: python benchmarks/bench_judge.py [--n 4000] [--preset cpu] [--data DIR] [--out judge-bench.json]
       python benchmarks/bench_judge.py --judge builtin:phantom-128-robust --data DIR   (no training)

Prints the training time, the judge's per-attribute accuracy on real test images (with
Wilson 95 % intervals and a presence breakdown by tumour signal and size), its robustness
(the same test images blurred or with noise added: how many healthy slices it then calls
"tumour", how many tumours it misses), and the adherence it reports for a perfect stand-in
generator (a phantom drawn with another seed whose requested findings are its true
findings) and for one that puts every tumour in the wrong hemisphere. Quality bar: presence
and hemisphere >= 0.95 on real test images. ``--n 4000 --preset cpu`` (seed 0) is how the
shipped judge ``builtin:phantom-128-robust`` was made (``builtin:phantom-128``: the same
before the ``cpu`` preset's blur and noise augmentation).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from synthmed.classify.augment import coarse_noise, gaussian_blur
from synthmed.classify.data import load_images
from synthmed.data.dataset import ImageDataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.evaluate.adherence import AdherenceConfig, evaluate_adherence
from synthmed.judge import FindingsJudge, JudgeTrainConfig, train_judge
from synthmed.results.intervals import wilson_interval
from synthmed.testing.standin import make_standin, set_requested

#: Degradations of the real test images: (name, function of (images, generator)).
PERTURBATIONS = (
    ("none", lambda x, g: x),
    ("white noise, std 0.04", lambda x, g: x + 0.04 * coarse_noise(len(x), *x.shape[-2:], 1, g)),
    ("white noise, std 0.08", lambda x, g: x + 0.08 * coarse_noise(len(x), *x.shape[-2:], 1, g)),
    ("blotchy noise (1/4 res), std 0.08", lambda x, g: x + 0.08 * coarse_noise(len(x), *x.shape[-2:], 4, g)),
    ("Gaussian blur, sigma 1 px", lambda x, g: gaussian_blur(x, torch.ones(len(x)))),
    ("Gaussian blur, sigma 2 px", lambda x, g: gaussian_blur(x, torch.full((len(x),), 2.0))),
)


def robustness(judge: FindingsJudge, ds: ImageDataset, records: list) -> dict[str, dict[str, float]]:
    """Presence and hemisphere accuracy of the judge on degraded copies of ``records``' images."""
    x = load_images(ds, records, judge.config.image_size, progress=False).float()
    truth = [rec.original_findings or rec.findings for rec in records]
    present = np.array([bool(f.tumor_present) for f in truth])
    side = np.array([f.hemisphere for f in truth])
    out = {}
    print(f"robustness on {len(records)} real test images ({int((~present).sum())} healthy):")
    for name, perturb in PERTURBATIONS:
        pred = judge.predict_findings(perturb(x, torch.Generator().manual_seed(0)).clamp(0, 1))
        said = np.array([bool(p.tumor_present) for p in pred])
        seen_side = np.array([p.hemisphere for p in pred])
        row = {"presence": float((said == present).mean()), "healthy_called_tumour": int((said & ~present).sum()),
               "tumours_missed": int((~said & present).sum()),
               "hemisphere": float((seen_side[present] == side[present]).mean())}
        print(f"  {name:34s} presence {row['presence']:.3f}, healthy called tumour {row['healthy_called_tumour']}"
              f"/{int((~present).sum())}, tumours missed {row['tumours_missed']}/{int(present.sum())}, "
              f"hemisphere {row['hemisphere']:.3f}")
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="real dataset (default: a fresh phantom)")
    ap.add_argument("--n", type=int, default=4000, help="phantom slices when --data is not given")
    ap.add_argument("--n-fake", type=int, default=400, help="stand-in generated images")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="keep data and judge here (default: a temporary directory)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    ap.add_argument("--judge", help="measure this judge (directory or builtin:NAME) on --data; no training")
    args = ap.parse_args()
    if args.judge:
        if args.data is None:
            ap.error("--judge needs --data (a real dataset with a test split)")
        ds = ImageDataset(args.data)
        figures = {"judge": args.judge,
                   "robustness": robustness(FindingsJudge.from_pretrained(args.judge), ds, ds.split("test"))}
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        real = args.data
        if real is None:
            real = work / "phantom"
            t0 = time.perf_counter()
            generate_phantom(PhantomConfig(out=real, n=args.n, size=128, seed=0, workers=0), progress=False)
            print(f"phantom: {args.n} slices in {time.perf_counter() - t0:.0f} s")
        report = train_judge(JudgeTrainConfig(data=real, out=work / "judge", preset=args.preset, epochs=args.epochs,
                                              threads=args.threads, seed=args.seed), progress=False)
        print(f"judge ({args.preset}): trained on {report.n_train} images in {report.seconds:.0f} s "
              f"(best epoch {report.fit.best_epoch} of {report.fit.epochs_run})")
        print(f"accuracy on {report.n_test} real test images [Wilson 95% CI]:")
        figures: dict[str, object] = {"train_seconds": report.seconds, "n_train": report.n_train,
                                      "n_test": report.n_test, "real_test": {}}
        for name, agg in report.real_test.items():
            if agg.n:
                lo, hi = wilson_interval(agg.correct, agg.n)
                print(f"  {name:15s} {agg.accuracy:.3f} [{lo:.3f}, {hi:.3f}]  (n={agg.n})")
                figures["real_test"][name] = {"accuracy": agg.accuracy, "ci95": [lo, hi], "n": agg.n}  # type: ignore[index]
        ds = ImageDataset(real)
        test = ds.split("test")
        judge = FindingsJudge.from_pretrained(work / "judge")
        pred = judge.predict_dataset(ds, test, progress=False)
        seen, right = collections.Counter(), collections.Counter()
        for rec, p in zip(test, pred, strict=True):
            f = rec.original_findings or rec.findings
            key = "no tumour" if not f.tumor_present else f"{f.intensity} {f.size_category}"
            seen[key] += 1
            right[key] += int(p.tumor_present == f.tumor_present)
        print("presence accuracy by tumour signal and size:")
        for key in sorted(seen):
            print(f"  {key:28s} {right[key] / seen[key]:.2f}  (n={seen[key]})")
        figures["presence_by_kind"] = {k: {"accuracy": right[k] / seen[k], "n": seen[k]} for k in seen}
        figures["robustness"] = robustness(judge, ds, test)
        fake = make_standin(work / "fake", n=args.n_fake, size=128, seed=101, requested="truth", workers=0)
        for mode in ("truth", "flip-hemisphere"):
            set_requested(fake, mode)
            adh = evaluate_adherence(AdherenceConfig(fake=fake, judge=work / "judge"), progress=False)
            acc = {k: v.accuracy for k, v in adh.agreements.items() if v.n}
            print(f"adherence, stand-in generator '{mode}': "
                  + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
            figures[f"adherence_{mode}"] = acc
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
