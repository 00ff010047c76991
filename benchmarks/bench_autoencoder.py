"""What an LDM's autoencoder keeps of real lesions: the judge on reconstructions of real test images.

Usage::

    python benchmarks/bench_autoencoder.py --model MODEL_DIR --data REAL_DATASET_DIR \
        [--judge builtin:phantom-128-robust] [--split test] [--noise 0,0.1,0.3,0.5] [--json out.json] \
        [--fidelity efficientnet-lite0 [--reference-split train]]

A latent diffusion model can only draw what its decoder can draw. This encodes the real
test images with the model's VAE (posterior mean), optionally adds Gaussian noise of
``sigma`` latent standard deviations (a stand-in for the errors of an imperfect UNet),
decodes, and asks the findings judge about the result. Printed per noise level: mean
absolute reconstruction error ([0, 1] units), the judge's presence and hemisphere accuracy
against the true findings (Wilson 95 % intervals), and its false positives (lesions seen in
tumour-free slices) and misses. The row "original" is the judge on the untouched images.

With ``--scanner-noise`` each reconstruction row is followed by the same images with fresh
Rician noise drawn from a model fitted on the real ``--reference-split``
(:mod:`synthmed.data.noise`), as ``synthmed generate`` draws it on an LDM's images.

With ``--fidelity EXTRACTOR`` (e.g. ``efficientnet-lite0``) each row also gets the Fréchet
distance and precision/recall (k = 3) of its images against the real ``--reference-split``
(default train): the "original" row is then the real-vs-real floor at the same n, and the
reconstruction rows say how much realism the first stage alone gives up, a ceiling no UNet on
it can pass.

If the judge misses the lesions of reconstructions at ``sigma = 0``, the latents cannot
carry them. A UNet on that autoencoder can then follow prompts only by drawing lesions
clearer than the real ones, so this is not a strict cap on adherence. If false positives
climb quickly with ``sigma``, small UNet errors decode into lesion-like blobs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.data.dataset import ImageDataset
from synthmed.data.noise import fit_noise_model
from synthmed.findings.agreement import attribute_agreement
from synthmed.judge import FindingsJudge
from synthmed.judge.train import reference_findings
from synthmed.results.intervals import wilson_interval
from synthmed.train.ldm.data import load_training_data


def vae_folder(model: Path) -> Path:
    """The ``AutoencoderKL`` folder of a pipeline directory (or ``model`` itself)."""
    return model / "vae" if (model / "vae" / "config.json").is_file() else model


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, sigma: float, generator: torch.Generator,
                batch_size: int = 32) -> torch.Tensor:
    """Decode (posterior mean + sigma * latent std * noise) of (N, C, H, W) images in [-1, 1]."""
    means = torch.cat([vae.encode(images[i:i + batch_size]).latent_dist.mode()
                       for i in range(0, len(images), batch_size)])
    if sigma > 0:
        means = means + sigma * means.std() * torch.randn(means.shape, generator=generator)
    return torch.cat([vae.decode(means[i:i + batch_size]).sample.clamp(-1, 1)
                      for i in range(0, len(means), batch_size)])


def judge_row(judge: FindingsJudge, images01: torch.Tensor, refs: list, name: str, mae: float | None) -> dict:
    size = judge.config.image_size
    if images01.shape[-1] != size:
        images01 = F.interpolate(images01, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    preds = judge.predict_findings(images01)
    agree = attribute_agreement(zip(preds, refs, strict=True), ("tumor_present", "hemisphere"))
    present = np.array([r.tumor_present for r in refs])
    said = np.array([bool(p.tumor_present) for p in preds])
    row: dict = {"input": name, "mae": mae, "false_positives": int((said & ~present).sum()),
                 "tumour_free": int((~present).sum()), "misses": int((~said & present).sum()),
                 "with_tumour": int(present.sum())}
    for attr, a in agree.items():
        row[attr] = {"accuracy": a.accuracy, "n": a.n, "ci95": list(wilson_interval(a.correct, a.n))}
    return row


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) in [-1, 1] -> stored-image arrays (H, W) or (H, W, C), uint8."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [a[..., 0] if a.shape[-1] == 1 else a for a in x]


def fidelity_cells(extractor, reference: torch.Tensor, images: torch.Tensor) -> dict:
    """FD and precision/recall (k = 3) of ``images`` against ``reference`` features."""
    from synthmed.evaluate.fidelity import fid, precision_recall

    feats = extractor.extract(to_uint8(images), batch_size=64).features
    pr = precision_recall(reference, feats, k=3)
    return {"fd": fid(reference, feats), "precision": pr.precision, "recall": pr.recall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="LDM pipeline directory (or its vae/ folder)")
    ap.add_argument("--data", type=Path, required=True, help="captioned real dataset with true findings")
    ap.add_argument("--judge", default="builtin:phantom-128-robust")
    ap.add_argument("--split", default="test")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--noise", default="0,0.1,0.3,0.5", help="latent noise levels (latent standard deviations)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--fidelity", metavar="EXTRACTOR", help="also FD and precision/recall against real images")
    ap.add_argument("--reference-split", default="train", help="the real images of --fidelity")
    ap.add_argument("--scanner-noise", action="store_true", help="also each reconstruction with Rician scanner noise "
                    "re-synthesised from a noise model fitted on --reference-split (synthmed.data.noise)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_folder(args.model)).eval()
    judge = FindingsJudge.from_pretrained(args.judge)
    data = load_training_data(args.data, resolution=args.resolution, split=args.split, use_paraphrases=False)
    ds = ImageDataset(args.data)
    by_name = {r.file_name: r for r in ds.records}
    refs = [reference_findings(by_name[n], "original", ds.root / "metadata.jsonl") for n in data.names]
    x = data.images
    if x.shape[1] != vae.config.in_channels:
        raise SystemExit(f"{args.data}: images have {x.shape[1]} channels, the VAE expects {vae.config.in_channels}")

    extractor = reference = None
    if args.fidelity:
        from synthmed.features.registry import build_extractor

        extractor = build_extractor(args.fidelity)
        ref = load_training_data(args.data, resolution=args.resolution, split=args.reference_split,
                                 use_paraphrases=False)
        reference = extractor.extract(to_uint8(ref.images), batch_size=64).features
    rows = [judge_row(judge, (x + 1) / 2, refs, "original", None)]
    if extractor is not None:
        rows[0].update(fidelity_cells(extractor, reference, x))
    scanner = None
    if args.scanner_noise:  # fitted on the reference split, as train ldm fits it on its training images
        ref_images = load_training_data(args.data, resolution=args.resolution, split=args.reference_split,
                                        use_paraphrases=False).images
        scanner = fit_noise_model(((img[0] + 1) / 2).numpy() for img in ref_images)
    g = torch.Generator().manual_seed(args.seed)
    for sigma in (float(s) for s in args.noise.split(",") if s.strip()):
        y = reconstruct(vae, x, sigma, g)
        versions = [(f"reconstruction, sigma {sigma:g}", y)]
        if scanner is not None:
            noisy = [scanner.apply(((img[0] + 1) / 2).numpy(), args.seed * 100_000 + i)[0] for i, img in enumerate(y)]
            versions.append(("  + scanner noise", torch.from_numpy(np.stack(noisy))[:, None] * 2 - 1))
        for name, images in versions:
            mae = float((images - x).abs().mean() / 2)  # [0, 1] units
            rows.append(judge_row(judge, (images + 1) / 2, refs, name, mae))
            if extractor is not None:
                rows[-1].update(fidelity_cells(extractor, reference, images))

    print(f"{len(x)} {args.split} images of {args.data}; VAE {vae_folder(args.model)} "
          f"(latents {vae.config.latent_channels} x {args.resolution // 2 ** (len(vae.config.block_out_channels) - 1)}"
          f"^2); judge {args.judge}")
    extra_head = f" {'FD':>7s} {'P':>5s} {'R':>5s}" if extractor is not None else ""
    print(f"{'input':28s} {'MAE':>6s} {'presence':>22s} {'hemisphere':>22s} {'FP':>7s} {'missed':>7s}{extra_head}")
    for r in rows:
        cells = []
        for attr in ("tumor_present", "hemisphere"):
            a = r[attr]
            cells.append(f"{a['accuracy']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]")
        mae = "" if r["mae"] is None else f"{r['mae']:.4f}"
        print(f"{r['input']:28s} {mae:>6s} {cells[0]:>22s} {cells[1]:>22s} "
              f"{r['false_positives']:>3d}/{r['tumour_free']:<3d} {r['misses']:>3d}/{r['with_tumour']:<3d}"
              + (f" {r['fd']:7.1f} {r['precision']:5.3f} {r['recall']:5.3f}" if "fd" in r else ""))
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "judge": args.judge,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
