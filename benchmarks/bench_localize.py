"""Localiser benchmark on the built-in phantom: held-out patients' pixel/image AUROC, AP, Dice, accuracy, precision.

Builds (or reuses) a phantom dataset, trains the localiser with a preset (default ``cpu``:
the from-scratch CLIP backbone), predicts on the test split (patients never seen in
training) and prints the figures plus train/predict throughput. The runs of docs/localization.md:
the ``cpu`` preset (150 epochs, measured there as a chain of exact resumes; pixel AUROC 0.997,
image AUROC 0.967; about 90 minutes on a 2-core CPU), and one 100-epoch run of this script
(pixel AUROC 0.996, image AUROC 0.950; 62 minutes):

    python benchmarks/bench_localize.py --work runs/bench_localize --n 8000 --size 96 --preset cpu
    python benchmarks/bench_localize.py --work runs/bench_localize --n 8000 --size 96 --preset cpu \
        --epochs 100 --options '{"lr_decay_epochs": 20}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("runs/bench_localize"))
    p.add_argument("--n", type=int, default=1200, help="phantom slices")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--backbone", default=None, help="CLIP id/folder (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto (the GPU when present), cpu, cuda...")
    p.add_argument("--options", default="{}",
                   help='more LocalizeTrainConfig fields as JSON, e.g. \'{"image_score": "map-max"}\'')
    args = p.parse_args()

    import torch

    from synthmed.data.phantom import PhantomConfig, generate_phantom
    from synthmed.localize.config import LocalizeTrainConfig
    from synthmed.localize.predict import LocalizePredictConfig, predict_localization
    from synthmed.localize.train import train_localizer

    torch.set_num_threads(args.threads)
    data = args.work / "phantom"
    if not (data / "metadata.jsonl").is_file():
        generate_phantom(PhantomConfig(out=data, n=args.n, size=args.size, seed=0, workers=0), progress=False)
    model = args.work / f"model-{args.preset}"
    t0 = time.perf_counter()
    train_localizer(LocalizeTrainConfig.model_validate({
        "data": data, "out": model, "preset": args.preset, "backbone": args.backbone, "epochs": args.epochs,
        "threads": args.threads, "device": args.device, "overwrite": True, "progress": False,
        **json.loads(args.options)}))
    train_s = time.perf_counter() - t0
    meta = json.loads((model / "synthmed.json").read_text())
    m = predict_localization(LocalizePredictConfig(model=model, data=data, out=args.work / f"pred-{args.preset}",
                                                   split="test", progress=False, threads=args.threads,
                                                   device=args.device))
    assert m is not None
    print(f"preset {args.preset} {args.options}, backbone {meta['backbone']['source']}, "
          f"test split (held-out patients), {m['n_images']} images, threshold {m['threshold']:.2f}")
    for key in ("pixel_auroc", "pixel_ap", "pixel_dice", "pixel_iou", "pixel_accuracy", "pixel_precision",
                "pixel_recall", "image_auroc", "image_ap"):
        v = m.get(key)
        print(f"  {key:16s} {v:.4f}" if isinstance(v, float) else f"  {key:16s} {v}")
    print(f"  train: {train_s:.0f} s total, decoder training {meta['train_images_per_second']} images/s; "
          f"predict: {m['images_per_second']} images/s")


if __name__ == "__main__":
    main()
