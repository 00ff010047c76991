"""Training step time and peak memory of ``synthmed train lora`` vs diffusers' LoRA example.

Usage::

    python benchmarks/bench_finetune.py [--base PIPELINE_DIR] [--resolution 64] [--batch-size 4] [--steps 30]

Without ``--base`` a tiny SD pipeline is built offline (``synthmed.testing.pipelines``);
with a GPU, pass a local SD 1.5 folder and ``--resolution 512``.

The reference is the training step of diffusers' ``examples/text_to_image/train_text_to_image_lora.py``
(the example script cannot be downloaded here, so its step is re-implemented below line by
line): peft LoRA on the UNet attention (``to_k, to_q, to_v, to_out.0``), AdamW on the LoRA
parameters, and per step: ``vae.encode(pixels).latent_dist.sample() * scaling_factor``, noise,
uniform timesteps, ``add_noise``, the frozen text encoder on the batch's ids, the UNet,
Min-SNR-gamma weighted MSE, backward, clip, ``optimizer.step()``, ``lr_scheduler.step()``.

``train lora`` runs as users run it (``train_lora(config)``), same base, data, rank, batch,
resolution, learning rate, Min-SNR gamma and frozen text encoder (latent caching and export
are outside its training loop and not timed). Each optimizer step is timed on both sides;
the script prints the median and the fastest step of each, because on a shared machine
other jobs slow single steps at random. The sides alternate (``--rounds``), each run in a
fresh subprocess, so peak memory (CUDA: ``max_memory_allocated``; CPU: peak RSS of the
process, which includes the interpreter and libraries) is not shared.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def run_ours(args) -> dict:
    import json as _json

    from synthmed.testing.pipelines import tiny_lora_config
    from synthmed.train.finetune import train_lora

    out = Path(args.work) / "ours"
    cfg = tiny_lora_config(args.base, args.data, out, resolution=args.resolution, max_steps=args.steps,
                           lora={"rank": args.rank}, checkpoint_every=10**6, validation_steps=1,
                           validation_prompts=["x"], overwrite=True,
                           optim={"batch_size": args.batch_size, "lr": 1e-4, "warmup_steps": 0, "min_snr_gamma": 5.0},
                           mixed_precision=args.mixed_precision)
    t0 = time.monotonic()
    train_lora(cfg)
    total = time.monotonic() - t0
    prov = _json.loads((out / "synthmed.json").read_text())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    res = prov["result"]
    return {"impl": "synthmed train lora", "loop_seconds": res["seconds"], "steps": args.steps,
            "median_ms": 1000 * res["median_step_seconds"], "min_ms": 1000 * res["min_step_seconds"],
            "total_seconds": total, "peak_memory_mb": _peak_memory_mb(device)}


def run_reference(args) -> dict:
    """diffusers' train_text_to_image_lora.py training step, re-implemented faithfully."""
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import cast_training_params, compute_snr
    from peft import LoraConfig
    from transformers import CLIPTextModel, CLIPTokenizer

    from synthmed.train.finetune.data import load_finetune_data

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.mixed_precision, torch.float32)
    base = args.base
    noise_scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    unet.to(device, dtype=weight_dtype)
    vae.to(device, dtype=weight_dtype)
    text_encoder.to(device, dtype=weight_dtype)
    if args.mixed_precision == "fp16":
        cast_training_params(unet, dtype=torch.float32)
    lora_layers = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora_layers, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=args.steps)
    # The example's dataset transforms: resize, crop, to [-1, 1]; captions tokenized to 77 ids.
    data = load_finetune_data(args.data, resolution=args.resolution, split="train", use_paraphrases=False)
    ids = tokenizer([c[0] for c in data.captions], max_length=tokenizer.model_max_length, padding="max_length",
                    truncation=True, return_tensors="pt").input_ids
    g = torch.Generator().manual_seed(0)
    t0 = time.monotonic()
    unet.train()
    times = []
    for _ in range(args.steps):
        t_step = time.monotonic()
        idx = torch.randint(0, len(data), (args.batch_size,), generator=g)
        pixel_values, input_ids = data.images[idx].to(device), ids[idx].to(device)
        with torch.autocast(device.type, dtype=weight_dtype, enabled=weight_dtype != torch.float32):
            latents = vae.encode(pixel_values.to(dtype=weight_dtype)).latent_dist.sample()
            latents = latents * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            bsz = latents.shape[0]
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device)
            noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
            encoder_hidden_states = text_encoder(input_ids, return_dict=False)[0]
            target = noise
            model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
            snr = compute_snr(noise_scheduler, timesteps)
            mse_loss_weights = torch.stack([snr, 5.0 * torch.ones_like(timesteps)], dim=1).min(dim=1)[0] / snr
            loss = F.mse_loss(model_pred.float(), target.float(), reduction="none")
            loss = (loss.mean(dim=list(range(1, len(loss.shape)))) * mse_loss_weights).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_layers, 1.0)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
        float(loss)  # the example logs loss.item() every step (a device sync)
        times.append(time.monotonic() - t_step)
    seconds = time.monotonic() - t0
    return {"impl": "diffusers train_text_to_image_lora.py step", "loop_seconds": seconds, "steps": args.steps,
            "median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times),
            "peak_memory_mb": _peak_memory_mb(device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="SD 1.x pipeline folder (default: a tiny one built offline)")
    p.add_argument("--data", help="captioned dataset directory (default: a 16-image toy set)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="alternating runs of each side (load drifts on shared CPUs)")
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--impl", choices=["ours", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.impl:
        print(json.dumps(run_ours(args) if args.impl == "ours" else run_reference(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.base is None:
            from synthmed.testing.pipelines import write_tiny_sd

            args.base = str(write_tiny_sd(Path(tmp) / "base"))
        if args.data is None:
            from synthmed.testing.ldm import write_disc_dataset

            args.data = str(write_disc_dataset(Path(tmp) / "data", n=16, size=args.resolution))
        runs: dict[str, list[dict]] = {"reference": [], "ours": []}
        for _ in range(args.rounds):
            for impl in ("reference", "ours"):
                cmd = [sys.executable, __file__, "--impl", impl, "--work", tmp, "--base", args.base, "--data",
                       args.data, "--resolution", str(args.resolution), "--batch-size", str(args.batch_size),
                       "--rank", str(args.rank), "--steps", str(args.steps), "--threads", str(args.threads),
                       "--mixed-precision", args.mixed_precision]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"{impl} failed:\n{proc.stderr[-3000:]}")
                runs[impl].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    device = "cuda" if torch.cuda.is_available() else f"cpu ({args.threads} threads)"
    print(f"LoRA fine-tuning, {device}, {args.resolution} px, batch {args.batch_size}, rank {args.rank}, "
          f"{args.steps} optimizer steps x {args.rounds} alternating runs per side")
    summary = {}
    for impl, rs in runs.items():
        summary[impl] = {"impl": rs[0]["impl"], "median_ms": statistics.median(r["median_ms"] for r in rs),
                         "min_ms": min(r["min_ms"] for r in rs),
                         "peak_memory_mb": max(r["peak_memory_mb"] for r in rs)}
        r = summary[impl]
        print(f"  {r['impl']:<45} median {r['median_ms']:8.1f} ms/step   fastest {r['min_ms']:8.1f} ms/step   "
              f"peak memory {r['peak_memory_mb']:7.1f} MB")
    ratio_median = summary["reference"]["median_ms"] / summary["ours"]["median_ms"]
    ratio_min = summary["reference"]["min_ms"] / summary["ours"]["min_ms"]
    mem = summary["ours"]["peak_memory_mb"] / summary["reference"]["peak_memory_mb"]
    print(f"  speed ratio (reference time / ours): median {ratio_median:.2f}x, fastest step {ratio_min:.2f}x;"
          f"   memory ratio (ours / reference): {mem:.2f}")
    print(json.dumps({"device": device, "summary": summary, "runs": runs, "speed_ratio_median": ratio_median,
                      "speed_ratio_fastest": ratio_min, "memory_ratio": mem}))


if __name__ == "__main__":
    main()
