"""Train and package ``builtin:phantom-vae-128``, the first stage shipped for phantom-scale LDMs.

Usage::

    python benchmarks/train_phantom_vae.py --work runs/phantom-vae [--steps 6000] \
        [--package src/synthmed/models/assets/phantom-vae-128]

The recipe of the shipped autoencoder, step by step (resumable: rerun the same command):

1. a 2,000-slice, 128 px phantom with seed 1, whose patients are not those of the demo's
   seed-0 phantom (so the demo's real test slices were never seen by it);
2. stage 1 of ``train ldm`` only: an ``AutoencoderKL`` with widths (32, 64, 128, 128), 8x
   downsampling to 16x16x4 latents, L1 + edge + KL losses on 64 px crops, batch 8, lr 1e-3
   with a cosine decay, ``--steps`` optimizer steps, seed 1, on every slice;
3. with ``--package``: its config and weights (float16, half the bytes; loaded back in
   float32) and a ``synthmed.json`` naming this recipe and the training record.

With ``--decoder-gan STEPS`` the script then sharpens that first stage (or, with ``--start
builtin:phantom-vae-128``, the shipped one without retraining it): its decoder is fine-tuned
against a patch critic for STEPS steps, the encoder frozen, so the latents do not change
(:mod:`synthmed.train.ldm.adversarial`); this is ``builtin:phantom-vae-128-gan``::

    python benchmarks/train_phantom_vae.py --work runs/phantom-vae --start builtin:phantom-vae-128 \
        --decoder-gan 3000 --package src/synthmed/models/assets/phantom-vae-128-gan

Measure it with ``benchmarks/bench_autoencoder.py --model DIR --data DEMO_REAL --split val
--noise 0 --fidelity efficientnet-lite0`` (docs/ldm.md, "A trained first stage").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from synthmed.models.ldm import AUTOENCODER_WEIGHTS, load_autoencoder
from synthmed.train.ldm import train_ldm
from synthmed.train.ldm.config import LDMTrainConfig
from synthmed.utils.provenance import hash_file, provenance, write_json_atomic
from synthmed.utils.tmpfiles import apply_umask

PHANTOM = {"n": 2000, "size": 128, "seed": 1}
AUTOENCODER = {"model": {"block_out_channels": [32, 64, 128, 128], "norm_num_groups": 16}, "warmup_steps": 100}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the phantom and the training run")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--package", type=Path, help="write the built-in model folder here")
    ap.add_argument("--start", help="skip stage 1 and start from this trained autoencoder (e.g. "
                    "builtin:phantom-vae-128); only with --decoder-gan")
    ap.add_argument("--decoder-gan", type=int, metavar="STEPS", help="then fine-tune the decoder against a patch "
                    "critic for STEPS steps (encoder frozen)")
    ap.add_argument("--adversarial-weight", type=float, help="with --decoder-gan: DecoderGANConfig.adversarial_weight")
    args = ap.parse_args()
    if args.start and not args.decoder_gan:
        ap.error("--start needs --decoder-gan")
    data, run = args.work / "phantom", args.work / "train"
    if not (data / "metadata.jsonl").is_file():
        subprocess.run([sys.executable, "-m", "synthmed.cli.main", "data", "phantom", "--out", str(data),
                        "--n", str(PHANTOM["n"]), "--size", str(PHANTOM["size"]), "--seed", str(PHANTOM["seed"])],
                       check=True)
    if args.decoder_gan:
        return sharpen(args, data)
    cfg = LDMTrainConfig.model_validate({
        "data": str(data), "out": str(run), "split": None, "resolution": PHANTOM["size"], "max_text_length": 48,
        "seed": PHANTOM["seed"], "autoencoder": {**AUTOENCODER, "max_steps": args.steps},
        "unet": {"max_steps": 1}, "num_samples": 1, "sample_steps": 1, "checkpoint_every": 500,
        "tensorboard": False, "progress": True, "resume": (run / "train_state.json").is_file()})
    train_ldm(cfg)
    if args.package is None:
        return
    vae = load_autoencoder(run)
    args.package.mkdir(parents=True, exist_ok=True)
    vae.to(torch.float16).save_pretrained(args.package, safe_serialization=True)
    apply_umask(args.package)
    record = json.loads((run / "synthmed.json").read_text())
    write_json_atomic(args.package / "synthmed.json", provenance(
        kind="autoencoder", recipe="benchmarks/train_phantom_vae.py", phantom=PHANTOM,
        steps=args.steps, stored_dtype="float16", weights_sha256=hash_file(args.package / AUTOENCODER_WEIGHTS),
        training={"config": record["config"]["autoencoder"], "data": record["data"],
                  "stage": record["stages"]["autoencoder"]}))
    print(f"packaged {args.package}")


def sharpen(args: argparse.Namespace, data: Path) -> None:
    """Fine-tune the decoder of ``--start`` (or of this script's stage 1) against a patch critic."""
    from synthmed.train.ldm.adversarial import DecoderGANConfig, finetune_decoder
    from synthmed.train.ldm.data import load_training_data

    start = args.start or str(args.work / "train")
    vae = load_autoencoder(start).float()
    images = load_training_data(data, resolution=PHANTOM["size"], split=None, use_paraphrases=False).images
    cfg = DecoderGANConfig(max_steps=args.decoder_gan, **(
        {"adversarial_weight": args.adversarial_weight} if args.adversarial_weight is not None else {}))
    ckdir = args.work / f"decoder-gan-{cfg.adversarial_weight:g}"
    record = finetune_decoder(vae, images, cfg, checkpoint_dir=ckdir, seed=PHANTOM["seed"],
                              resume=any(ckdir.glob("step-*")))
    print(json.dumps(record["last_parts"]))
    if args.package is None:
        return
    args.package.mkdir(parents=True, exist_ok=True)
    vae.to(torch.float16).save_pretrained(args.package, safe_serialization=True)
    apply_umask(args.package)
    write_json_atomic(args.package / "synthmed.json", provenance(
        kind="autoencoder", recipe="benchmarks/train_phantom_vae.py --decoder-gan", phantom=PHANTOM, start=start,
        stored_dtype="float16", weights_sha256=hash_file(args.package / AUTOENCODER_WEIGHTS),
        decoder_gan=record))
    print(f"packaged {args.package}")


if __name__ == "__main__":
    main()
