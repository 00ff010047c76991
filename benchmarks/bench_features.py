"""Feature-extraction throughput (images/s) of each extractor on this machine's CPU.

Usage: python benchmarks/bench_features.py [--n 64] [--size 128] [--batch-size 32] [--inception-weights PATH]

Images: a phantom brain-MRI set (grayscale, 8-bit) of ``--n`` slices at ``--size`` px. Each
extractor runs once on a warm-up batch, then on all images; the time includes its own
preprocessing (resize, channel replication, normalisation). Extractors:

* ``efficientnet-lite0`` — packaged ImageNet weights (offline);
* ``inception`` — with ``--inception-weights`` if given, else with random weights in the real
  file's layout (same network and cost, numbers not meaningful), in the torch-fidelity and
  clean-fid preprocessing modes;
* ``clip`` / ``dinov2`` — ViT-B/16- and ViT-S/14-sized models built from configs with random
  weights (the architectures of openai/clip-vit-base-patch16 and facebook/dinov2-small), since
  hub weights cannot be downloaded here: the throughput is that of the real models;
* ``domain`` — a small conv encoder (``conv-encoder``, widths 32/64/128, 128 px input).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from synthmed.data.dataset import ImageDataset
from synthmed.data.phantom import PhantomConfig, generate_phantom
from synthmed.features import build_extractor
from synthmed.features.domain import ConvEncoder, save_domain_encoder


def _random_inception(tmp: Path) -> Path:
    from synthmed.features.inception_net import FIDInceptionV3

    path = tmp / "random-inception.pth"
    torch.save(FIDInceptionV3().state_dict(), path)
    return path


def _vit_checkpoints(tmp: Path) -> dict[str, Path]:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=768, intermediate_size=3072,
                                                          num_hidden_layers=12, num_attention_heads=12,
                                                          image_size=224, patch_size=16, projection_dim=512))
    clip.save_pretrained(tmp / "clip-b16")
    dino = Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14,
                                    image_size=518))
    dino.save_pretrained(tmp / "dinov2-s14")
    return {"clip": tmp / "clip-b16", "dinov2": tmp / "dinov2-s14"}


def _domain(tmp: Path) -> Path:
    enc = ConvEncoder(in_channels=1, widths=(32, 64, 128))
    return save_domain_encoder(enc, tmp / "domain", {"architecture": "conv-encoder",
                                                     "kwargs": {"in_channels": 1, "widths": [32, 64, 128]},
                                                     "input": {"size": 128, "channels": 1}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--inception-weights", type=Path, default=None)
    ap.add_argument("--only", nargs="*", default=None, help="subset of: efficientnet inception clip dinov2 domain")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        generate_phantom(PhantomConfig(out=tmp / "ph", n=args.n, size=args.size, seed=0, workers=1), progress=False)
        ds = ImageDataset(tmp / "ph")
        images = [ds.image(r) for r in ds.records]
        want = set(args.only or ["efficientnet", "inception", "clip", "dinov2", "domain"])
        specs: list[tuple[str, str, dict]] = []
        if "efficientnet" in want:
            specs.append(("efficientnet-lite0", "efficientnet-lite0", {}))
        if "inception" in want:
            weights = args.inception_weights or _random_inception(tmp)
            verify = args.inception_weights is not None
            for mode in ("torch-fidelity", "clean-fid"):
                specs.append((f"inception ({mode})", "inception",
                              {"weights": weights, "preprocessing": mode, "verify_weights": verify}))
        if want & {"clip", "dinov2"}:
            vits = _vit_checkpoints(tmp)
            for kind, label in (("clip", "clip ViT-B/16 size"), ("dinov2", "dinov2 ViT-S/14 size")):
                if kind in want:
                    specs.append((label, f"{kind}:{vits[kind]}", {}))
        if "domain" in want:
            specs.append(("domain conv-encoder", f"domain:{_domain(tmp)}", {}))
        print(f"{len(images)} grayscale {args.size}px images, batch {args.batch_size}, "
              f"torch threads {torch.get_num_threads()}")
        for label, name, opts in specs:
            ext = build_extractor(name, **opts)
            ext.extract(images[: min(4, len(images))], batch_size=4)            # warm-up
            t0 = time.perf_counter()
            out = ext.extract(images, batch_size=args.batch_size)
            dt = time.perf_counter() - t0
            print(f"{label:28s} dim {out.features.shape[1]:5d}  {len(images) / dt:7.1f} images/s  "
                  f"({dt:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
