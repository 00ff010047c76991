"""Benchmark a trained LDM: training and sampling throughput, and few-step sampler fidelity.

Usage::

    python benchmarks/bench_ldm.py --model MODEL_DIR --data REAL_DATASET_DIR [--n 128] [--json out.json]

Prints (not a timed test):

* training throughput (images/s) of the model's autoencoder and UNet, measured on fresh
  copies of its architecture with the batch sizes recorded in ``synthmed.json``, and the
  throughput the training run itself logged;
* sampling throughput (images/s) at 25 DPM-Solver++ steps and 150 DDPM steps (MSDM);
* Fréchet distances to real held-out images of DPM-Solver++ (25 and 20 steps) and of the
  150-step DDPM sampler, in two simple feature spaces (the proper extractors come with the
  fidelity-metrics work): ``vae-latent`` — the model's own VAE posterior mean, average-pooled
  to 2x2 (16-d for 4 latent channels); ``pixel-pca`` — 32x32 thumbnails projected on the top
  16 principal components of the real images. Neither is comparable with Inception FIDs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import linalg


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (N, D) features (float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _time_steps(model, loss_fn, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss_fn().backward()
        opt.step()
        opt.zero_grad()
    return (time.perf_counter() - t0) / steps


def training_throughput(model_dir: Path, steps: int) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    prov = json.loads((model_dir / "synthmed.json").read_text())
    cfg = prov["config"]
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(model_dir / "vae"))
    crop = cfg["autoencoder"]["crop_size"] or prov["data"]["resolution"]
    bs_ae = cfg["autoencoder"]["batch_size"]
    x = torch.randn(bs_ae, vae.config.in_channels, crop, crop)

    def ae_loss():
        post = vae.encode(x).latent_dist
        return (vae.decode(post.sample()).sample - x).abs().mean()

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(model_dir / "unet"))
    bs = cfg["unet"]["batch_size"]
    side = unet.config.sample_size
    z = torch.randn(bs, unet.config.in_channels, side, side)
    ctx = torch.randn(bs, prov["text_encoder"]["max_length"], unet.config.cross_attention_dim)
    t = torch.randint(0, 1000, (bs,))

    def unet_loss():
        return (unet(z, t, encoder_hidden_states=ctx).sample - z).pow(2).mean()

    ae_s, un_s = _time_steps(vae, ae_loss, steps), _time_steps(unet, unet_loss, steps)
    stages = prov["stages"]
    return {"autoencoder_images_per_s": bs_ae / ae_s, "autoencoder_crop": crop,
            "unet_images_per_s": bs / un_s, "unet_latent": [unet.config.in_channels, side, side],
            "logged_by_training_run": {k: stages[k]["images_per_second"] for k in ("autoencoder", "unet")}}


def sample(pipe, scheduler_name: str, steps: int, prompts: list[str], seeds: list[int], batch: int,
           guidance: float) -> tuple[np.ndarray, float]:
    from synthmed.generate.schedulers import make_scheduler

    pipe.scheduler = make_scheduler(scheduler_name, pipe.scheduler.config)
    out = []
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator().manual_seed(s) for s in seeds[i:i + batch]]
        out.append(pipe(prompts[i:i + batch], num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                        output_type="np").images)
    return np.concatenate(out), (time.perf_counter() - t0)


def features(images01: np.ndarray, vae, pca: tuple[np.ndarray, np.ndarray] | None):
    """(N, H, W, C) in [0, 1] -> vae-latent (N, 4*2*2) and pixel-pca (N, 16) features."""
    x = torch.from_numpy(images01).permute(0, 3, 1, 2).float() * 2 - 1
    with torch.no_grad():
        lat = torch.cat([vae.encode(x[i:i + 32]).latent_dist.mean for i in range(0, len(x), 32)])
    vfeat = torch.nn.functional.adaptive_avg_pool2d(lat, 2).flatten(1).numpy()
    thumbs = torch.nn.functional.adaptive_avg_pool2d(x, 32).flatten(1).numpy()
    if pca is None:
        mean = thumbs.mean(0)
        _, _, vt = np.linalg.svd(thumbs - mean, full_matrices=False)
        pca = (mean, vt[:16])
    return vfeat, (thumbs - pca[0]) @ pca[1].T, pca


def _resize(images: np.ndarray, side: int) -> np.ndarray:
    """(N, H, W, 1) float in [0, 1] resized to (N, side, side, 1)."""
    if images.shape[1] == side:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im[..., 0]).resize((side, side), Image.Resampling.BOX))
                     for im in images.astype(np.float32)])[..., None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="real dataset dir (its test split, else val, is used)")
    ap.add_argument("--n", type=int, default=128, help="images per sampler for the Fréchet distances")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--guidance-scale", type=float, default=3.0)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import DiffusionPipeline

    from synthmed.data.dataset import ImageDataset
    from synthmed.data.imageio import to_float01

    results: dict = {"threads": torch.get_num_threads()}
    results["training"] = training_throughput(args.model, args.train_steps)
    print(f"training: autoencoder {results['training']['autoencoder_images_per_s']:.1f} img/s "
          f"({results['training']['autoencoder_crop']} px crops), UNet {results['training']['unet_images_per_s']:.1f} "
          f"img/s (latents {results['training']['unet_latent']}); the run logged "
          f"{results['training']['logged_by_training_run']}", flush=True)

    ds = ImageDataset(args.data)
    split = "test" if ds.split("test") else "val"
    recs = [r for r in ds.split(split) if r.text][: args.n]
    real = np.stack([to_float01(ds.image(r)) for r in recs])[..., None]
    prompts, seeds = [r.text for r in recs], list(range(len(recs)))
    pipe = DiffusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    side = pipe.unet.config.sample_size * pipe.vae_scale_factor
    real = _resize(real, side)
    rv, rp, pca = features(real, pipe.vae, None)
    results["n"] = len(recs)
    results["real_split"] = split
    # Reference: the same number of real training images against the held-out ones.
    train = ds.split("train")[: len(recs)]
    ref_imgs = _resize(np.stack([to_float01(ds.image(r)) for r in train])[..., None], side)
    tv, tp, _ = features(ref_imgs, pipe.vae, pca)
    results["real_train_vs_heldout"] = {"fd_vae_latent": frechet_distance(rv, tv),
                                        "fd_pixel_pca": frechet_distance(rp, tp)}
    print(f"{'real train':>16}: FD vae-latent {results['real_train_vs_heldout']['fd_vae_latent']:.3f}, FD pixel-pca "
          f"{results['real_train_vs_heldout']['fd_pixel_pca']:.3f} (the floor for n={len(recs)})", flush=True)
    results["samplers"] = {}
    for name, steps in (("dpm-solver++", 25), ("dpm-solver++", 20), ("ddpm", 150)):
        imgs, secs = sample(pipe, name, steps, prompts, seeds, args.batch_size, args.guidance_scale)
        gv, gp, _ = features(imgs, pipe.vae, pca)
        key = f"{name}@{steps}"
        results["samplers"][key] = {"images_per_s": len(imgs) / secs, "fd_vae_latent": frechet_distance(rv, gv),
                                    "fd_pixel_pca": frechet_distance(rp, gp)}
        r = results["samplers"][key]
        print(f"{key:>16}: {r['images_per_s']:.2f} img/s, FD vae-latent {r['fd_vae_latent']:.3f}, "
              f"FD pixel-pca {r['fd_pixel_pca']:.3f}", flush=True)
    ref = results["samplers"]["ddpm@150"]
    for key in ("dpm-solver++@25", "dpm-solver++@20"):
        cur = results["samplers"][key]
        print(f"{key} vs ddpm@150: FD ratio vae-latent {cur['fd_vae_latent'] / ref['fd_vae_latent']:.3f}, "
              f"pixel-pca {cur['fd_pixel_pca'] / ref['fd_pixel_pca']:.3f} (within 5% means <= 1.05)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
