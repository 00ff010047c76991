"""The shared fine-tuning core: one denoising objective, one loop, one output directory layout.

A trainer (LoRA, textual inversion, Kandinsky) supplies a :class:`DenoiseTrainable` (the
frozen pretrained networks with its few trainable parameters), which training items a
micro-batch draws from, how an item becomes a prompt, and how the result is exported.
Everything else is here and shared: the latent cache, the noise / timestep / caption draws
as pure functions of (seed, step, micro-batch, rank) -- so a resumed run continues exactly
--, Min-SNR-gamma weighting, the warmup + cosine schedule, gradient accumulation, mixed
precision, optional 8-bit Adam, checkpoints of the trainable parameters only, validation
grids from fixed prompts and seeds, and the NaN-loss stop (the last four through
:mod:`synthmed.train.ldm.loop`, the loop the from-scratch LDM trainer uses).

Output directory::

    OUT/<the trainer's artifacts>       e.g. pytorch_lora_weights.safetensors
    OUT/synthmed.json                   provenance: config, seed, data hash, versions, result
    OUT/train_config.yaml               the exact config
    OUT/checkpoints/step-*/             resumable state (trainable parameters, optimizer, RNG)
    OUT/cache/latents.safetensors       VAE posterior of every training image
    OUT/validation/step-*.png           real images (top) over validation samples (bottom)
    OUT/logs/                           TensorBoard events
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from synthmed.data.dataset import hash_dataset
from synthmed.errors import ConfigError
from synthmed.share.card import card_after_training
from synthmed.train.finetune.config import FinetuneConfig
from synthmed.train.finetune.data import FinetuneData, LatentCache, cached_latents
from synthmed.train.finetune.families import Conditioning
from synthmed.train.ldm.loop import StagePlan, StageResult, run_stage
from synthmed.train.ldm.optim import build_optimizer as build_adamw
from synthmed.train.ldm.randomness import EpochSampler, derive_seed, stage_key, step_generator
from synthmed.train.ldm.samples import make_grid, save_grid, to_unit
from synthmed.train.ldm.unet import denoising_target, min_snr_weights, per_sample_mse
from synthmed.utils.configs import dump_yaml
from synthmed.utils.outdir import prepare_out_dir
from synthmed.utils.provenance import provenance, write_json_atomic
from synthmed.utils.tmpfiles import save_safetensors

logger = logging.getLogger(__name__)

_OWNED = ("checkpoints", "cache", "logs", "validation", "best", "synthmed.json", "train_config.yaml")

#: ``prompts_fn(item_indices, generator) -> conditioning`` of one micro-batch: the prompts
#: (SD, SDXL, Kandinsky prior) or a (B, D) tensor of CLIP image embeddings (Kandinsky decoder).
PromptsFn = Callable[[torch.Tensor, torch.Generator], list[str]]


class DenoiseTrainable(torch.nn.Module):
    """The networks one step runs: text encoder(s) -> conditioning -> UNet prediction.

    One module, so that data parallelism wraps (and synchronises) everything trainable.
    With frozen text encoders the conditioning of each distinct prompt is computed once
    and kept (captions repeat every epoch).

    Args:
        family: The SD / SDXL strategy (:mod:`synthmed.train.finetune.families`).
        unet: The denoiser (frozen, or with LoRA layers).
        text_encoders: The family's text encoders, in order.
        tokenizers: Their tokenizers.
        resolution: Training image side (SDXL's size conditioning).
        train_text: Whether any text-encoder parameter is trainable (no caching then).
    """

    def __init__(self, family, unet, text_encoders: list, tokenizers: list, resolution: int, train_text: bool):
        super().__init__()
        self.family = family
        self.unet = unet
        self.text_encoders = torch.nn.ModuleList(text_encoders)
        self.tokenizers = tokenizers
        self.resolution = resolution
        self.train_text = train_text
        self._cache: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor] | None]] = {}

    def condition(self, prompts: list[str]) -> Conditioning:
        if self.train_text:
            tokens = self.family.tokenize(self.tokenizers, prompts)
            return self.family.encode(list(self.text_encoders), tokens, self.resolution)
        todo = sorted({p for p in prompts if p not in self._cache})
        if todo:
            with torch.no_grad():
                cond = self.family.encode(list(self.text_encoders), self.family.tokenize(self.tokenizers, todo),
                                          self.resolution)
            for i, p in enumerate(todo):
                added = {k: v[i].detach() for k, v in cond.added.items()} if cond.added else None
                self._cache[p] = (cond.hidden_states[i].detach(), added)
        hidden = torch.stack([self._cache[p][0] for p in prompts])
        added = None
        if self._cache[prompts[0]][1] is not None:
            added = {k: torch.stack([self._cache[p][1][k] for p in prompts]) for k in self._cache[prompts[0]][1]}
        return Conditioning(hidden, added)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """(B, c, h, w) prediction (noise or velocity) for noisy latents at ``timesteps``."""
        cond = self.condition(prompts)
        dtype = next(self.unet.parameters()).dtype
        kwargs = {"added_cond_kwargs": {k: v.to(dtype) for k, v in cond.added.items()}} if cond.added else {}
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=cond.hidden_states.to(dtype),
                         **kwargs).sample


def make_denoise_loss_fn(latents: LatentCache, item_rows: torch.Tensor, prompts_fn: PromptsFn, noise_scheduler, *,
                         batch_size: int, grad_accum: int, min_snr_gamma: float | None, seed: int, stage: str,
                         rank: int, world: int, device: torch.device, pixel_weights: torch.Tensor | None = None,
                         noise_offset: float = 0.0):
    """The ``loss_fn(model, step, micro)`` of :func:`synthmed.train.ldm.loop.run_stage`.

    Per micro-batch: pick items (an epoch permutation), pick each item's image variant
    (plain / flipped), draw z0 from the cached posterior, noise it at a uniform timestep,
    and regress the noise (or v) with Min-SNR-gamma weights (Hang et al. 2023). Every draw
    comes from the step's own generator.

    Args:
        latents: The cached posteriors.
        item_rows: (M,) int64 training item -> image row.
        prompts_fn: The prompts of a micro-batch's items.
        pixel_weights: (rows, 1, h, w) loss weight of each latent pixel of each image row
            (:func:`synthmed.train.ldm.unet.lesion_pixel_weights`), or None for a plain mean.
        noise_offset: Adds ``noise_offset`` times a standard normal constant per image and channel
            to the noise (offset noise), so the model can learn to shift an image's mean.
    """
    sampler = EpochSampler(len(item_rows), seed=seed, stage=stage, batch_size=batch_size, grad_accum=grad_accum,
                           world=world)
    num_t = noise_scheduler.config.num_train_timesteps
    prediction_type = noise_scheduler.config.prediction_type
    noise_scheduler.alphas_cumprod = noise_scheduler.alphas_cumprod.to(device)
    variants = latents.mean.shape[0]

    def loss_fn(model: torch.nn.Module, step: int, micro: int) -> torch.Tensor:
        g = step_generator(seed, stage, step, micro, rank)
        items = sampler.indices(step, micro, rank)
        rows = item_rows[items]
        variant = torch.randint(0, variants, (len(rows),), generator=g)
        z0 = latents.sample(rows, variant, g)
        noise = torch.randn(z0.shape, generator=g)
        timesteps = torch.randint(0, num_t, (len(rows),), generator=g)
        prompts = prompts_fn(items, g)
        if noise_offset:  # drawn last, so runs without it keep their draws
            noise = noise + noise_offset * torch.randn((*z0.shape[:2], 1, 1), generator=g)
        z0, noise, timesteps = z0.to(device), noise.to(device), timesteps.to(device)
        noisy = noise_scheduler.add_noise(z0, noise, timesteps)  # z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps
        target = denoising_target(noise_scheduler, z0, noise, timesteps)
        pred = model(noisy, timesteps, prompts)
        weights = None if pixel_weights is None else pixel_weights[rows].to(device)
        per_sample = per_sample_mse(pred, target, weights)
        if min_snr_gamma is not None:
            per_sample = per_sample * snr_weights(noise_scheduler, timesteps, min_snr_gamma, prediction_type)
        return per_sample.mean()

    return loss_fn


def snr_weights(noise_scheduler, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023, eq. 4 and section 4.2) for any prediction type.

    x0-prediction: min(SNR, gamma); epsilon: min(SNR, gamma) / SNR; v: min(SNR, gamma) / (SNR + 1).
    """
    if prediction_type == "sample":
        from diffusers.training_utils import compute_snr

        return torch.clamp(compute_snr(noise_scheduler, timesteps), max=gamma)
    return min_snr_weights(noise_scheduler, timesteps, gamma, prediction_type)


def build_optimizer(params: list[torch.nn.Parameter], optim) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit AdamW when ``optim.use_8bit_adam``.

    Raises:
        ConfigError: 8-bit Adam asked for but bitsandbytes is not installed.
    """
    if not params:
        raise ConfigError("nothing to train: no parameter requires gradients")
    if optim.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise ConfigError("use_8bit_adam needs bitsandbytes: pip install bitsandbytes") from err
        return bnb.optim.AdamW8bit(params, lr=optim.lr, weight_decay=optim.weight_decay, eps=optim.adam_eps)
    return build_adamw(params, optim)


def weight_dtype(mixed_precision: str) -> torch.dtype:
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


def resolve_mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def config_digest(cfg: FinetuneConfig, data_hash: str) -> str:
    """Fingerprint of what the checkpoints depend on (run length and switches excluded)."""
    blob = cfg.model_dump(mode="json", exclude={"out", "max_steps", "resume", "overwrite", "progress",
                                                "tensorboard", "threads", "checkpoint_every", "keep_checkpoints",
                                                "log_every", "validation_every", "validation_prompts",
                                                "val_split", "val_loss_every", "keep"})
    blob["optim"].pop("max_steps", None)
    blob["data"] = data_hash
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def make_accelerator(cfg: FinetuneConfig):
    """An ``accelerate.Accelerator`` for the run (gloo data parallelism on multi-process CPU launches)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(cpu=multi_cpu, mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
                       log_with="tensorboard" if cfg.tensorboard else None,
                       project_config=ProjectConfiguration(project_dir=str(cfg.out),
                                                           logging_dir=str(cfg.out / "logs")))


@dataclass
class Validation:
    """Fixed prompts and seeds sampled through the family's own pipeline during training."""

    prompts: list[str]
    real: torch.Tensor | None  # (n, 3, H, W) in [-1, 1] for the top row
    make_pipeline: Callable[[], object]
    steps: int
    guidance_scale: float
    resolution: int
    seed: int
    #: Extra pipeline arguments (a ControlNet's control images) and a row of them in [0, 1] (n, H, W, C) on top.
    pipe_kwargs: dict = field(default_factory=dict)
    top_row: np.ndarray | None = None

    @torch.no_grad()
    def grid(self):
        pipe = self.make_pipeline()
        pipe.set_progress_bar_config(disable=True)
        gens = [torch.Generator().manual_seed(derive_seed(self.seed, stage_key("validation"), i))
                for i in range(len(self.prompts))]
        images = pipe(self.prompts, num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                      generator=gens, height=self.resolution, width=self.resolution, output_type="np",
                      **self.pipe_kwargs).images
        rows = [r for r in (self.top_row, to_unit(self.real) if self.real is not None else None) if r is not None]
        if rows and rows[0].shape[-1] != images.shape[-1]:  # grayscale rows beside colour samples
            rows = [np.repeat(r, images.shape[-1], axis=-1) if r.shape[-1] == 1 else r for r in rows]
        return make_grid(rows + [images])


@dataclass
class HeldOut:
    """Held-out rows of a validation loss: their latents and the conditioning of each (no dropout)."""

    latents: LatentCache
    prompts_fn: PromptsFn  # called with all held-out item indices and an unused generator


BEST_DIR = "best"


class BestWeights:
    """The trainable weights of the step with the lowest validation loss, kept in ``OUT/best/`` (survives resume)."""

    def __init__(self, out: Path, digest: str, resume: bool):
        self.dir = out / BEST_DIR
        self.digest = digest
        self.step: int | None = None
        self.loss = float("inf")
        record = self.dir / "best.json"
        if resume and record.is_file():
            info = json.loads(record.read_text())
            if info.get("digest") == digest:
                self.step, self.loss = int(info["step"]), float(info["loss"])

    def offer(self, module: torch.nn.Module, step: int, loss: float) -> bool:
        """Keep ``module``'s trainable weights when ``loss`` is the lowest so far; whether it was."""
        if not loss < self.loss:
            return False
        state = {n: p.detach().float().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}
        self.dir.mkdir(parents=True, exist_ok=True)
        save_safetensors(state, str(self.dir / "weights.safetensors"))
        write_json_atomic(self.dir / "best.json", {"step": step, "loss": loss, "digest": self.digest})
        self.step, self.loss = step, loss
        return True

    def restore(self, module: torch.nn.Module) -> None:
        """Load the kept weights into ``module`` (its trainable parameters)."""
        from safetensors.torch import load_file

        state = load_file(str(self.dir / "weights.safetensors"))
        params = dict(module.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value.to(params[name].dtype))


#: Timesteps (fractions of the schedule) at which every held-out image is scored.
VAL_TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, held: HeldOut, noise_scheduler, *, seed: int, device: torch.device,
                    batch_size: int = 8) -> float:
    """Mean denoising MSE of the held-out images at fixed timesteps and fixed noise (the same at every call).

    Each image is scored at :data:`VAL_TIMESTEP_FRACTIONS` of the schedule with the posterior mean
    as z0 and noise drawn from a generator seeded by (seed, image), plain MSE (no loss weighting),
    so the figure changes only with the weights and is comparable across steps and runs.
    """
    num_t = noise_scheduler.config.num_train_timesteps
    n = held.latents.mean.shape[1]
    conditioning = held.prompts_fn(torch.arange(n), torch.Generator().manual_seed(0))
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        z0 = ((held.latents.mean[0, idx] - held.latents.shift_factor) * held.latents.scaling_factor).to(device)
        cond = _select(conditioning, idx)
        for k, frac in enumerate(VAL_TIMESTEP_FRACTIONS):
            noise = torch.stack([torch.randn(z0.shape[1:], generator=torch.Generator().manual_seed(
                derive_seed(seed, stage_key("validation"), i, k))) for i in idx]).to(device)
            t = torch.full((len(idx),), int(frac * (num_t - 1)), dtype=torch.long, device=device)
            noisy = noise_scheduler.add_noise(z0, noise, t)
            total += float(per_sample_mse(model(noisy, t, cond), denoising_target(noise_scheduler, z0, noise, t)).sum())
            count += len(idx)
    model.train(was_training)
    return total / count


def _select(conditioning, idx: list[int]):
    """The entries ``idx`` of a batch's conditioning (a list of prompts, or a tensor)."""
    if isinstance(conditioning, torch.Tensor):
        return conditioning[idx]
    return [conditioning[i] for i in idx]


@dataclass
class FinetuneRun:
    """What a trainer hands to :func:`run_finetune`."""

    name: str  # stage name: "lora", "textual_inversion", ...
    trainable: torch.nn.Module  # forward(noisy, timesteps, conditioning) -> prediction
    vae: torch.nn.Module
    noise_scheduler: object
    data: FinetuneData
    item_rows: torch.Tensor
    prompts_fn: PromptsFn
    export: Callable[[torch.nn.Module, StageResult], dict]
    validation: Validation | None = None
    latents: LatentCache | None = None  # precomputed targets (else the VAE posterior of the images, cached)
    pixel_weights: torch.Tensor | None = None  # (rows, 1, h, w) latent-pixel loss weights (lesion weighting)
    #: The prompts of the held-out rows of ``val_split`` (given their data): trainers with a validation loss.
    held_out_prompts: Callable[[FinetuneData], PromptsFn] | None = None


def start(cfg: FinetuneConfig, owned: tuple[str, ...]):
    """Check the output directory, create the accelerator, save the config. Returns (accelerator, data hash)."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    data_hash = hash_dataset(cfg.data)
    accelerator = make_accelerator(cfg)
    if accelerator.is_main_process:
        prepare_out_dir(cfg.out, resume=cfg.resume, overwrite=cfg.overwrite, owned=_OWNED + owned)
        dump_yaml(cfg, cfg.out / "train_config.yaml")
    accelerator.wait_for_everyone()
    if cfg.tensorboard:
        accelerator.init_trackers(cfg.out.name or "finetune")
    return accelerator, data_hash


def finished_run(out: Path, digest: str, max_steps: int) -> dict | None:
    """The summary of a run in ``out`` that already trained ``max_steps`` steps with these settings, or None."""
    try:
        summary = json.loads((out / "synthmed.json").read_text())
    except (OSError, ValueError):
        return None
    result = summary.get("result") or {}
    exported = summary.get("lora_file") or summary.get("embedding_files") or summary.get("weights_file")
    if summary.get("config_digest") != digest or result.get("steps") != max_steps or not exported:
        return None
    files = [exported] if isinstance(exported, str) else list(exported)
    if not all((out / f).is_file() for f in files):
        return None
    summary.setdefault("losses", [])
    return summary


def _held_out(accelerator, cfg: FinetuneConfig, run: FinetuneRun, digest: str) -> HeldOut | None:
    """The ``val_split`` rows as a :class:`HeldOut` (latents cached beside the training ones), or None.

    Raises:
        ConfigError: the trainer has no validation loss, or the rows carry no splits.
        DataError: no row of ``val_split`` (naming the splits present).
    """
    if cfg.val_split is None:
        return None
    if run.held_out_prompts is None:
        raise ConfigError(f"val_split: {run.name} has no validation loss yet (lora has); drop val_split")
    from synthmed.data.dataset import read_records
    from synthmed.train.finetune.data import load_finetune_data

    if not any(r.split for r in read_records(cfg.data)):
        raise ConfigError(f"val_split {cfg.val_split!r}: the rows of {cfg.data} carry no split; split the dataset "
                          "first (synthmed data split)")
    val = load_finetune_data(cfg.data, resolution=cfg.resolution, split=cfg.val_split, use_paraphrases=False)
    latents = cached_latents(run.vae, val.images, path=cfg.out / "cache" / "val_latents.safetensors",
                             digest=f"{digest}:val:{cfg.val_split}", flip=False, device=accelerator.device,
                             is_main=accelerator.is_main_process, wait=accelerator.wait_for_everyone)
    return HeldOut(latents, run.held_out_prompts(val))


def run_finetune(accelerator, cfg: FinetuneConfig, run: FinetuneRun, *, data_hash: str, extra: dict) -> dict:
    """Cache latents, train, validate, export and write provenance. Returns the result summary."""
    t_begin = time.monotonic()
    digest = config_digest(cfg, data_hash)
    if cfg.resume:
        finished = finished_run(cfg.out, digest, cfg.optim.max_steps)
        if finished is not None:
            logger.info("%s: %s already finished %d steps with these settings; nothing to resume", run.name,
                        cfg.out, cfg.optim.max_steps)
            accelerator.end_training()
            return finished
    latents = run.latents
    if latents is None:
        latents = cached_latents(run.vae, run.data.images, path=cfg.out / "cache" / "latents.safetensors",
                                 digest=f"{digest}:{cfg.random_flip}", flip=cfg.random_flip,
                                 device=accelerator.device, is_main=accelerator.is_main_process,
                                 wait=accelerator.wait_for_everyone)
    optim = cfg.optim
    world = accelerator.num_processes
    held = _held_out(accelerator, cfg, run, digest)
    best = None
    if held is not None and cfg.keep == "best":
        best = BestWeights(cfg.out, f"{digest}:{cfg.val_split}:{cfg.val_loss_every}", cfg.resume)
    val_losses: list[tuple[int, float]] = []
    loss_fn = make_denoise_loss_fn(latents, run.item_rows, run.prompts_fn, run.noise_scheduler,
                                   batch_size=optim.batch_size, grad_accum=optim.grad_accum,
                                   min_snr_gamma=optim.min_snr_gamma, seed=cfg.seed, stage=run.name,
                                   rank=accelerator.process_index, world=world, device=accelerator.device,
                                   pixel_weights=run.pixel_weights, noise_offset=optim.noise_offset)
    params = [p for p in run.trainable.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    logger.info("%s: %d trainable parameters", run.name, n_trainable)

    def validate(step: int) -> None:
        if run.validation is None or not accelerator.is_main_process:
            return
        was_training = run.trainable.training
        run.trainable.eval()
        with accelerator.autocast():  # frozen weights may be fp16/bf16 while the VAE stays fp32
            grid = run.validation.grid()
        run.trainable.train(was_training)
        save_grid(grid, cfg.out / "validation" / f"step-{step:07d}.png", accelerator, "validation", step)

    def score(step: int) -> None:
        if held is None or not accelerator.is_main_process or (val_losses and val_losses[-1][0] == step):
            return
        with accelerator.autocast():
            loss = validation_loss(run.trainable, held, run.noise_scheduler, seed=cfg.seed, device=accelerator.device)
        val_losses.append((step, loss))
        accelerator.log({f"{run.name}/val_loss": loss}, step=step)
        kept = best is not None and best.offer(run.trainable, step, loss)
        logger.info("%s: step %d validation loss %.5f%s", run.name, step, loss, " (best so far)" if kept else "")

    def on_step(step: int) -> None:
        if cfg.validation_every and step % cfg.validation_every == 0:
            validate(step)
        if step % cfg.val_loss_every == 0:
            score(step)

    plan = StagePlan(name=run.name, max_steps=optim.max_steps, deadline=None, checkpoint_dir=cfg.out / "checkpoints",
                     digest=digest, checkpoint_every=cfg.checkpoint_every, keep_checkpoints=cfg.keep_checkpoints,
                     log_every=cfg.log_every, progress=cfg.progress, resume=cfg.resume,
                     images_per_step=optim.batch_size * optim.grad_accum * world, trainable_only=True)
    result = run_stage(accelerator, model=run.trainable, optimizer=build_optimizer(params, optim), cfg=optim,
                       plan=plan, loss_fn=loss_fn, on_step=on_step)
    summary: dict = {}
    if accelerator.is_main_process:
        score(result.steps)
        if best is not None and best.step is not None and best.step != result.steps:
            best.restore(run.trainable)
            logger.info("%s: exporting the weights of step %d (validation loss %.5f, the lowest)", run.name,
                        best.step, best.loss)
        if not (cfg.validation_every and result.steps % cfg.validation_every == 0):
            validate(result.steps)
        summary = run.export(run.trainable, result)
        if held is not None:
            summary.update({"val_losses": val_losses, "val_rows": int(held.latents.mean.shape[1]),
                            "exported_step": best.step if best is not None else result.steps})
        res = asdict(result)
        res.pop("losses")
        summary.update({"result": res, "trainable_parameters": n_trainable})
        write_json_atomic(cfg.out / "synthmed.json", provenance(
            kind=run.name, config=cfg.model_dump(mode="json"), seed=cfg.seed,
            data={"path": str(cfg.data), "hash": data_hash, "rows": len(run.data), "split": cfg.split,
                  "channels_in_data": run.data.source.channels, "converted_to_rgb": run.data.source.channels == 1},
            latents={"shape": list(latents.mean.shape), "scaling_factor": latents.scaling_factor},
            wall_seconds=time.monotonic() - t_begin, config_digest=digest, **extra, **summary))
        card_after_training(cfg.out)
        logger.info("%s: saved to %s", run.name, cfg.out)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    summary["losses"] = result.losses
    return summary
