"""``generate``: prompts -> images -> a dataset directory, resumable and reproducible.

Image ``i`` (prompt ``i // n_per_prompt``, sample ``i % n_per_prompt``) is named
``gen_{i:06d}.png`` and seeded with ``derive_seed(seed, i)`` (stored in its row as
``seed``: ``torch.Generator().manual_seed(row.seed)`` in vanilla diffusers redraws it).
Batches are fixed index ranges, so a resumed run recomputes exactly what the first run
would have, and rows it already wrote are skipped. The same seed and batch size give the
same image bit for bit on a CPU; another batch size changes the floating-point reduction
order inside the networks, i.e. at most rare 1-level differences in 8-bit pixels.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

import synthmed.generate.masks as masks
import synthmed.generate.shards as shards
from synthmed.data.dataset import DatasetWriter
from synthmed.data.imageio import quantize
from synthmed.data.noise import NOISE_MODEL_FILE, RicianNoise, read_noise_model
from synthmed.errors import ConfigError
from synthmed.findings.schema import BrainMRIFindings
from synthmed.generate.config import GenerateConfig
from synthmed.generate.pipeline import check_model_reference, load_pipeline, model_id
from synthmed.generate.prompts import PromptSpec
from synthmed.generate.schedulers import check_scheduler_name
from synthmed.models.ldm import mask_condition_of, mask_pipeline_inputs
from synthmed.utils.device import resolve_device
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.provenance import provenance, write_json_atomic
from synthmed.utils.seeding import derive_seed

logger = logging.getLogger(__name__)

RUN_FILE = "generate.json"


def image_name(index: int) -> str:
    return f"gen_{index:06d}.png"


def image_seed(base_seed: int, index: int) -> int:
    """The generator seed of image ``index`` of a run with ``base_seed``."""
    return derive_seed(base_seed, index)


def _check_resume(out: Path, identity: dict) -> None:
    run_file = out / RUN_FILE
    meta = out / "metadata.jsonl"
    if not run_file.is_file() or not meta.is_file() or meta.stat().st_size == 0:
        return  # nothing generated yet
    previous = json.loads(run_file.read_text()).get("identity", {})
    # A setting absent from an older run's record had its default, None (e.g. ``prior``).
    changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
    if changed:
        raise ConfigError(f"{out}: already holds images generated with other settings (differs in: "
                          f"{', '.join(changed)}); rerun with the same settings to resume, or choose another --out")


def _to_array(image: np.ndarray, bits: int) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> (H, W) or (H, W, 3) unsigned integers."""
    if image.shape[-1] == 1:
        return quantize(image[..., 0], bits)
    return quantize(image, 8)  # colour PNGs are 8-bit


def sample_images(pipe, prompts: list[str], seeds: list[int], *, steps: int, guidance_scale: float, bits: int = 8,
                  noise: RicianNoise | None = None, negative_prompt: str | None = None, height: int | None = None,
                  width: int | None = None, lesions: list[np.ndarray] | None = None,
                  heads: list[np.ndarray] | None = None,
                  controlnet_scale: float = 1.0) -> list[tuple[np.ndarray, dict]]:
    """One image per prompt, each drawn with its own seed: what ``generate`` writes, in memory.

    ``lesions`` (one (H, W) bool lesion mask per prompt) are the control images of a ControlNet
    pipeline (:func:`synthmed.generate.pipeline.with_controlnet`), or, with each image's head
    outline (``heads``, for a ``mask+head`` model), the conditioning of a mask-conditioned model's inpainting pipeline
    (:func:`synthmed.models.ldm.mask_pipeline_inputs`).

    Returns:
        (image, row fields) per prompt: (H, W) or (H, W, 3) unsigned integers, and
        ``{"acquisition_noise_sigma": s}`` where ``noise`` re-synthesised scanner noise.
    """
    kwargs: dict = {}
    if negative_prompt is not None:
        kwargs["negative_prompt"] = [negative_prompt] * len(prompts)
    if height is not None:
        kwargs["height"] = height
    if width is not None:
        kwargs["width"] = width
    if lesions is not None and hasattr(pipe, "controlnet"):
        kwargs["image"] = [masks.control_image(m) for m in lesions]
        kwargs["controlnet_conditioning_scale"] = controlnet_scale
    elif lesions is not None:  # a mask-conditioned model (with head outlines when it was trained on them)
        kwargs.update(mask_pipeline_inputs(lesions, heads, pipe.vae.config.in_channels))
    images = pipe(prompt=list(prompts), num_inference_steps=steps, guidance_scale=guidance_scale, output_type="np",
                  generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], **kwargs).images
    out = []
    for seed, image in zip(seeds, images, strict=True):
        image = np.asarray(image)
        extra = {}
        if noise is not None and image.shape[-1] == 1:
            image, extra["acquisition_noise_sigma"] = noise.apply(image, seed)
        out.append((_to_array(image, bits), extra))
    return out


def _row_fields(spec: PromptSpec, cfg: GenerateConfig, seed: int, mid: str) -> dict:
    fields = {"text": spec.text, "prompt": spec.text, "requested_findings": spec.findings, "seed": seed,
              "steps": cfg.steps, "guidance_scale": cfg.guidance_scale, "scheduler": cfg.scheduler,
              "model_id": mid, "source": f"generated:{mid}"}
    if cfg.controlnet is not None:
        fields.update({"controlnet": model_id(cfg.controlnet), "controlnet_scale": cfg.controlnet_scale})
    if isinstance(spec.findings, BrainMRIFindings):
        fields["label"] = "tumor" if spec.findings.tumor_present else "no_tumor"
    return fields


def noise_model_for(model: str, acquisition_noise: str = "auto") -> RicianNoise | None:
    """The scanner-noise model to re-synthesise (``synthmed.data.noise``), if asked for and stored with the model."""
    if acquisition_noise == "off" or not Path(model).is_dir():
        return None
    noise = read_noise_model(model)
    if noise is not None:
        summary = noise.summary()
        logger.info("re-synthesising scanner noise: Rician, sigma %.4f-%.4f over %d training images (%s; "
                    "--acquisition-noise off to skip)", summary["min"], summary["max"], summary["n"], NOISE_MODEL_FILE)
    return noise


def _written_dir(config: GenerateConfig) -> Path:
    """The folder a run writes: its shard's own (shards of a job array run side by side), else ``out``."""
    if config.num_shards > 1 and config.shard is not None:
        return shards.shard_dir(config.out, config.shard, config.num_shards)
    return Path(config.out)


@writes_to(lambda *args, **kwargs: _written_dir(first_argument("config")(*args, **kwargs)))
def generate(config: GenerateConfig) -> Path:
    """Generate ``n_per_prompt`` images per prompt into a dataset directory.

    Args:
        config: Model, prompts, sampler and output settings.

    Returns:
        ``config.out``: a dataset directory (``metadata.jsonl`` + ``images/``) whose rows
        carry prompt, text, requested_findings, seed, steps, guidance_scale, scheduler,
        model_id and ``source="generated:<model id>"``, and ``acquisition_noise_sigma`` where
        scanner noise was re-synthesised (:func:`noise_model_for`).

    Raises:
        ConfigError: unknown scheduler, bad prompt source, unloadable model/LoRA/embedding,
            or ``out`` holding a run with other settings.
        DataError: a ``balanced:DIR`` dataset without findings.
    """
    from tqdm.auto import tqdm

    cfg = config
    out = Path(cfg.out)
    # Check every input before loading the model.
    check_scheduler_name(cfg.scheduler)
    specs, mask_files, mask_images = masks.plan(cfg)
    conditioned = cfg.mask_conditioned
    wants_heads = mask_condition_of(cfg.model) == "mask+head"
    if wants_heads:
        masks.check_heads_available(cfg, mask_images)
    check_model_reference(cfg.model)
    if cfg.prior is not None:
        check_model_reference(cfg.prior)
    noise = noise_model_for(cfg.model, cfg.acquisition_noise)
    identity = {**cfg.run_identity(), "noise_model": noise.model_dump(mode="json") if noise else None}
    launched = shards.launched_shard() if cfg.num_shards == 1 else None
    shard, num_shards = launched or (cfg.shard or 0, cfg.num_shards)
    target = shards.shard_dir(out, shard, num_shards) if num_shards > 1 else out
    if num_shards == 1:
        shards.check_unsharded_out(out)
    _check_resume(target, identity)
    device = _launched_device() if launched and cfg.device == "auto" else resolve_device(cfg.device)

    total = len(specs) * cfg.n_per_prompt
    writer = DatasetWriter(target)
    write_json_atomic(target / RUN_FILE, {"identity": identity, "num_images": total, "num_prompts": len(specs),
                                          "num_shards": num_shards, "shard": shard, "batch_size": cfg.batch_size})
    batches = shards.shard_batches(shards.fixed_batches(total, cfg.batch_size), shard, num_shards)
    pending = [b for b in batches if not all(writer.has(image_name(i)) for i in b)]
    mine = [i for b in batches for i in b]
    done = sum(writer.has(image_name(i)) for i in mine)
    mid = model_id(cfg.model)
    t0 = time.monotonic()
    if pending:
        pipe = load_pipeline(cfg.model, scheduler=cfg.scheduler, loras=cfg.loras, lora_scale=cfg.lora_scale,
                             embeddings=cfg.embeddings, device=device, prior=cfg.prior, controlnet=cfg.controlnet)
        height, width = masks.output_size(cfg, mask_files, pipe) if conditioned else (cfg.height, cfg.width)
        logger.info("generating %d images (%d prompts x %d)%s, %d already written", len(mine), len(specs),
                    cfg.n_per_prompt, f", shard {shard} of {num_shards}" if num_shards > 1 else "", done)
        bar = tqdm(total=len(mine), initial=done, desc="generate", unit="img", disable=not cfg.progress)
        for batch in pending:
            batch_specs = [specs[i // cfg.n_per_prompt] for i in batch]
            seeds = [image_seed(cfg.seed, i) for i in batch]
            lesions, heads = masks.masks_for(cfg, mask_files, specs, batch, seeds, (height, width), images=mask_images,
                                             heads=wants_heads) if conditioned else (None, None)
            images = sample_images(pipe, [s.text for s in batch_specs], seeds, steps=cfg.steps,
                                   guidance_scale=cfg.guidance_scale, bits=cfg.bits, noise=noise,
                                   negative_prompt=cfg.negative_prompt, height=height, width=width, lesions=lesions,
                                   heads=heads, controlnet_scale=cfg.controlnet_scale)
            for k, (i, spec, seed, (image, extra)) in enumerate(zip(batch, batch_specs, seeds, images, strict=True)):
                name = image_name(i)
                if writer.has(name):
                    continue
                mask, drawn = (lesions[k], masks.row_fields(cfg, (height, width))) if conditioned else (None, {})
                writer.add(name, image, mask=mask, **_row_fields(spec, cfg, seed, mid), **drawn, **extra)
                bar.update(1)
        bar.close()
    else:
        logger.info("%s: all %d images already written", target, len(mine))
    writer.close()
    seconds = time.monotonic() - t0
    write_json_atomic(target / "synthmed.json", provenance(
        kind="generated", config=cfg.model_dump(mode="json", exclude={"shard", "num_shards"}), model_id=mid,
        num_images=total, num_prompts=len(specs), newly_generated=len(mine) - done, seconds=seconds))
    if num_shards == 1:
        return out
    if launched:  # every process has made its shard; the main one merges
        state = shards.launch_state()
        state.wait_for_everyone()
        if state.is_main_process:
            merge(out)
        state.wait_for_everyone()
        return out
    logger.info("shard %d of %d done in %s; when every shard is done: synthmed generate --merge %s", shard,
                num_shards, target, out)
    return target


def merge(out: str | Path) -> Path:
    """Merge the shards of a sharded ``generate`` run in ``out`` (:func:`synthmed.generate.shards.merge_shards`)."""
    return shards.merge_shards(out, RUN_FILE, image_name)


def _launched_device():
    return shards.launch_state().device
