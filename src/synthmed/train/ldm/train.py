"""``train_ldm``: autoencoder, latent cache, conditional UNet, diffusers pipeline folder.

Output directory (a diffusers pipeline folder once training finishes)::

    OUT/model_index.json, scheduler/, unet/, vae/, text_encoder/, tokenizer/
    OUT/synthmed.json          provenance: config, seeds, data hash, versions, stage results
    OUT/train_config.yaml      the exact config
    OUT/train_state.json       which stages are done (for --resume)
    OUT/checkpoints/{autoencoder,unet}/step-*/   resumable training state
    OUT/cache/latents.safetensors               posterior of every training image
    OUT/samples/*.png          reconstruction and sample grids
    OUT/logs/                  TensorBoard events
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open

from synthmed.data.dataset import hash_dataset
from synthmed.data.noise import NOISE_MODEL_FILE, RicianNoise, fit_noise_model, write_noise_model
from synthmed.errors import ConfigError, DataError
from synthmed.models.ldm import (
    AUTOENCODER_WEIGHTS,
    autoencoder_folder,
    build_autoencoder,
    build_noise_scheduler,
    build_unet,
    load_autoencoder,
    mask_pictures,
    save_pipeline,
)
from synthmed.models.text_encoders import PromptEmbeddingCache, count_truncated, load_text_encoder
from synthmed.share.card import card_after_training
from synthmed.train.ldm.augment import augmented_copies
from synthmed.train.ldm.autoencoder import (
    AutoencoderForTraining,
    encode_images,
    latent_scaling_factor,
    make_autoencoder_loss_fn,
)
from synthmed.train.ldm.config import LDMTrainConfig, StageConfig
from synthmed.train.ldm.data import TrainingData, head_masks, latent_cache_is_current, load_training_data
from synthmed.train.ldm.loop import StagePlan, StageResult, run_stage
from synthmed.train.ldm.optim import EMA, build_optimizer
from synthmed.train.ldm.randomness import derive_seed
from synthmed.train.ldm.samples import reconstruction_grid, save_grid, text_to_image_grid
from synthmed.train.ldm.unet import make_unet_loss_fn
from synthmed.utils.configs import dump_yaml
from synthmed.utils.device import torch_threads
from synthmed.utils.outdir import first_argument, prepare_out_dir, writes_to
from synthmed.utils.provenance import hash_file, provenance, write_json_atomic
from synthmed.utils.tmpfiles import apply_umask, save_safetensors

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
_OWNED = ("checkpoints", "cache", "logs", "samples", "vae", "unet", "text_encoder", "tokenizer", "scheduler",
          "model_index.json", STATE_FILE, "synthmed.json", "train_config.yaml")
#: Seconds kept free at the end of a time budget for the final grid and the export.
_EXPORT_RESERVE_S = 12.0


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _digest(cfg: LDMTrainConfig, stage: StageConfig, data_hash: str) -> str:
    """Fingerprint of what a stage's checkpoints depend on (step counts and budgets excluded)."""
    stage_dict = stage.model_dump(mode="json", exclude={"max_steps"})
    blob = json.dumps({"stage": stage_dict, "seed": cfg.seed, "resolution": cfg.resolution, "split": cfg.split,
                       "text_encoder": cfg.text_encoder, "max_text_length": cfg.max_text_length,
                       "data": data_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _prepare_out_dir(out: Path, cfg: LDMTrainConfig) -> dict:
    """Check (and with ``overwrite`` clear) the output directory; return the saved stage state."""
    prepare_out_dir(out, resume=cfg.resume, overwrite=cfg.overwrite, owned=_OWNED)
    state_path = out / STATE_FILE
    return json.loads(state_path.read_text()) if cfg.resume and state_path.is_file() else {}


def _result_dict(result: StageResult) -> dict:
    d = asdict(result)
    d.pop("losses")
    return d


def _train_autoencoder(accelerator, cfg: LDMTrainConfig, data: TrainingData, *, digest: str,
                       deadline: float | None) -> tuple[torch.nn.Module, StageResult]:
    ae = cfg.autoencoder
    torch.manual_seed(derive_seed(cfg.seed, 101))  # the initial weights
    vae = build_autoencoder(ae.model, data.channels)
    wrapper = AutoencoderForTraining(vae)
    world = accelerator.num_processes
    plan = StagePlan(name="autoencoder", max_steps=cfg.stage_max_steps(ae), deadline=deadline,
                     checkpoint_dir=cfg.out / "checkpoints" / "autoencoder", digest=digest,
                     checkpoint_every=cfg.checkpoint_every, keep_checkpoints=cfg.keep_checkpoints,
                     log_every=cfg.log_every, calibration_steps=cfg.calibration_steps, progress=cfg.progress,
                     resume=cfg.resume, images_per_step=ae.batch_size * ae.grad_accum * world)
    loss_fn = make_autoencoder_loss_fn(data.images, ae, seed=cfg.seed, rank=accelerator.process_index,
                                       world=world, downsample=ae.model.downsample_factor,
                                       latent_channels=ae.model.latent_channels, device=accelerator.device)
    result = run_stage(accelerator, model=wrapper, optimizer=build_optimizer(wrapper.parameters(), ae), cfg=ae,
                       plan=plan, loss_fn=loss_fn)
    return vae.eval(), result


def _pretrained_autoencoder(cfg: LDMTrainConfig, data: TrainingData) -> dict:
    """Check a given trained autoencoder against the data; its record for the training state.

    Raises:
        ConfigError: its channels or downsampling do not fit the data.
    """
    folder = autoencoder_folder(cfg.pretrained_autoencoder)  # type: ignore[arg-type]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    factor = 2 ** (len(config.get("block_out_channels", ())) - 1)
    if config.get("in_channels") != data.channels:
        raise ConfigError(f"pretrained_autoencoder {cfg.pretrained_autoencoder!r} takes {config.get('in_channels')}-"
                          f"channel images, but the data have {data.channels}")
    if data.resolution % factor:
        raise ConfigError(f"resolution {data.resolution} is not a multiple of the downsample factor {factor} of "
                          f"pretrained_autoencoder {cfg.pretrained_autoencoder!r}")
    return {"pretrained": cfg.pretrained_autoencoder, "weights_sha256": hash_file(folder / AUTOENCODER_WEIGHTS)}


def _cached_latents(accelerator, cfg: LDMTrainConfig, vae, images: torch.Tensor, n_originals: int,
                    digest: str, conditions: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, float, tuple[torch.Tensor, torch.Tensor] | None]:
    """Encode the training images once (main process), then load on every process.

    ``images`` may hold augmented copies after the ``n_originals`` originals; the VAE's
    scaling factor comes from the originals only, so augmentation does not change it. With
    ``conditions`` (a mask-conditioned UNet: one conditioning picture per image, in [-1, 1])
    those are encoded too; their posterior (mean, std) is returned last, else None.
    """
    path = cfg.out / "cache" / "latents.safetensors"
    if accelerator.is_main_process:
        if not latent_cache_is_current(path, digest):
            t0 = time.monotonic()
            mean, std = encode_images(vae, images, device=accelerator.device)
            scale = latent_scaling_factor(mean[:n_originals], std[:n_originals])
            tensors = {"mean": mean.contiguous(), "std": std.contiguous()}
            if conditions is not None:
                m_mean, m_std = encode_images(vae, conditions, device=accelerator.device)
                tensors.update(mask_mean=m_mean.contiguous(), mask_std=m_std.contiguous())
            path.parent.mkdir(parents=True, exist_ok=True)
            save_safetensors(tensors, str(path), metadata={"digest": digest, "scaling_factor": repr(scale)})
            logger.info("cached %d latents %s in %.1f s (scaling factor %.4f)", len(mean), tuple(mean.shape[1:]),
                        time.monotonic() - t0, scale)
    accelerator.wait_for_everyone()
    with safe_open(str(path), framework="pt") as fh:
        mean, std = fh.get_tensor("mean"), fh.get_tensor("std")
        scale = float(fh.metadata()["scaling_factor"])
        mask_posterior = (fh.get_tensor("mask_mean"), fh.get_tensor("mask_std")) if conditions is not None else None
    return mean, std, scale, mask_posterior


def _sample_prompts(data: TrainingData, n: int, heads: torch.Tensor | None):
    """``n`` training captions spread over the dataset, their images, masks and ``heads`` (None where absent)."""
    n = min(n, len(data))
    idx = [round(i * (len(data) - 1) / max(1, n - 1)) for i in range(n)]
    masks = None if data.masks is None else data.masks[idx]
    return [data.captions[i][0] for i in idx], data.images[idx], masks, None if heads is None else heads[idx]


@writes_to(first_argument("config", "out"))
def train_ldm(config: LDMTrainConfig) -> Path:
    """Train a text-conditioned latent diffusion model from scratch and save a diffusers pipeline.

    Stage 1 trains the autoencoder, the training images are encoded once, stage 2 trains
    the UNet on the cached latents. With ``config.minutes`` the whole call (including the
    export) fits in that wall-clock budget; ``config.resume`` continues a killed run to the
    same final weights an uninterrupted run reaches (in fixed-step mode).

    Args:
        config: The training configuration.

    Returns:
        ``config.out``, a folder ``diffusers.DiffusionPipeline.from_pretrained`` loads.

    Raises:
        DataError: the dataset is missing, empty or uncaptioned.
        ConfigError: the output directory is not empty (and neither resume nor overwrite is
            set), or the text encoder cannot be loaded.
        TrainingError: the loss became NaN or infinite.
    """
    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    with torch_threads(cfg.threads):
        return _train(cfg)


def _train(cfg: LDMTrainConfig) -> Path:
    t_begin = time.monotonic()
    budget_end = t_begin + cfg.minutes * 60 if cfg.minutes else None
    # Inputs first: a bad dataset fails before any model is loaded.
    data = load_training_data(cfg.data, resolution=cfg.resolution, split=cfg.split,
                              use_paraphrases=cfg.unet.use_paraphrases)
    if cfg.unet.condition != "text" and data.masks is None:
        raise DataError(f"unet.condition: {cfg.unet.condition} needs a lesion mask (mask_file_name) on every training "
                        "row, an empty one for a slice without a lesion; some rows have none",
                        Path(cfg.data) / "metadata.jsonl")
    data_hash = hash_dataset(cfg.data)
    from accelerate import Accelerator  # heavy imports only once the inputs are known to be good
    from accelerate.utils import ProjectConfiguration
    from diffusers import AutoencoderKL

    # A multi-process launch (torchrun, `accelerate launch --multi_gpu`) on a machine without CUDA
    # runs CPU data parallelism over gloo; accelerate only picks it when told "cpu".
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=multi_cpu,
        mixed_precision=_mixed_precision(cfg.mixed_precision), log_with="tensorboard" if cfg.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(cfg.out), logging_dir=str(cfg.out / "logs")))
    state: dict = {}
    if accelerator.is_main_process:
        state = _prepare_out_dir(cfg.out, cfg)
        dump_yaml(cfg, cfg.out / "train_config.yaml")
    state = _broadcast(accelerator, state)
    if state.get("complete"):
        logger.info("%s: training already complete; nothing to resume", cfg.out)
        return cfg.out
    if cfg.tensorboard:
        accelerator.init_trackers("ldm")
    text = load_text_encoder(cfg.text_encoder, max_length=cfg.max_text_length, device=accelerator.device)

    def save_state() -> None:
        if accelerator.is_main_process:
            write_json_atomic(cfg.out / STATE_FILE, state)

    # Stage 1: autoencoder (or a trained one, given).
    ae_digest = _digest(cfg, cfg.autoencoder, data_hash)
    pretrained = None
    if cfg.pretrained_autoencoder is not None:
        pretrained = _pretrained_autoencoder(cfg, data)
        ae_digest = hashlib.sha256((ae_digest + pretrained["weights_sha256"]).encode()).hexdigest()
        started_with = state.get("autoencoder", {}).get("weights_sha256")
        if started_with is not None and started_with != pretrained["weights_sha256"]:
            raise ConfigError(f"{cfg.out} was started with another pretrained autoencoder; resume it with that one, "
                              "or start afresh with --overwrite")
    if state.get("autoencoder", {}).get("done"):
        vae = AutoencoderKL.from_pretrained(cfg.out / "vae").to(accelerator.device).eval()
        logger.info("autoencoder: done earlier, loaded from %s", cfg.out / "vae")
    elif pretrained is not None:
        vae = load_autoencoder(cfg.pretrained_autoencoder).to(accelerator.device)
        if accelerator.is_main_process:
            _, mae = reconstruction_grid(vae, data.images[:8], accelerator.device)
            state["autoencoder"] = {"done": True, **pretrained, "reconstruction_mae": mae}
            logger.info("autoencoder: %s, not trained (reconstruction error %.4f on this data)",
                        cfg.pretrained_autoencoder, mae)
    else:
        deadline = t_begin + cfg.minutes * 60 * cfg.autoencoder_fraction if cfg.minutes else None
        vae, ae_result = _train_autoencoder(accelerator, cfg, data, digest=ae_digest, deadline=deadline)
        if accelerator.is_main_process:
            grid, mae = reconstruction_grid(vae, data.images[:8], accelerator.device)
            save_grid(grid, cfg.out / "samples" / "autoencoder.png", accelerator, "autoencoder/reconstructions",
                      ae_result.steps)
            state["autoencoder"] = {"done": True, "reconstruction_mae": mae, **_result_dict(ae_result)}
            logger.info("autoencoder: reconstruction error %.4f (mean absolute, [0, 1] units)", mae)

    # Latent cache and the VAE's scaling factor.
    un = cfg.unet
    images, captions_per_image, masks = data.images, data.captions, data.masks
    latent_digest = ae_digest
    if un.augment is not None:  # cached copies with other brightness and contrast (augment.py)
        images = augmented_copies(data.images, un.augment, seed=cfg.seed)
        captions_per_image = data.captions * un.augment.copies
        masks = None if masks is None else masks.repeat(un.augment.copies, 1, 1, 1)
        latent_digest = hashlib.sha256((ae_digest + un.augment.model_dump_json()).encode()).hexdigest()
    mask_conditioned = un.condition != "text"
    conditions = heads = None
    if mask_conditioned:  # each image's conditioning picture: its lesion (and head outline)
        heads = head_masks(data.images) if un.condition == "mask+head" else torch.zeros_like(data.masks)
        conditions = mask_pictures(data.masks, heads, data.channels)
        conditions = conditions.repeat(un.augment.copies, 1, 1, 1) if un.augment is not None else conditions
        latent_digest = hashlib.sha256((latent_digest + f"condition={un.condition}").encode()).hexdigest()
    mean, std, scale, mask_posterior = _cached_latents(accelerator, cfg, vae, images, len(data),
                                                       digest=latent_digest, conditions=conditions)
    vae.register_to_config(scaling_factor=scale)
    if accelerator.is_main_process and not state.get("autoencoder", {}).get("saved"):
        vae.save_pretrained(cfg.out / "vae", safe_serialization=True)
        apply_umask(cfg.out / "vae")
        state["autoencoder"]["saved"] = True
        save_state()
    accelerator.wait_for_everyone()

    # Stage 2: conditional UNet.
    torch.manual_seed(derive_seed(cfg.seed, 102))
    unet = build_unet(un.model, latent_channels=mean.shape[1], sample_size=mean.shape[-1],
                      cross_attention_dim=text.hidden_size, mask_conditioned=mask_conditioned)
    ema = EMA(unet, un.ema_decay) if un.ema_decay else None
    noise_scheduler = build_noise_scheduler(un.noise)
    world = accelerator.num_processes
    texts = PromptEmbeddingCache(text)
    t0 = time.monotonic()
    captions = [c for caps in data.captions for c in caps]
    texts.precompute(captions + [""])
    logger.info("encoded %d distinct captions in %.1f s", len(texts), time.monotonic() - t0)
    n_long = count_truncated(text, captions)
    if n_long:
        logger.warning("%d of %d distinct captions are longer than max_text_length=%d tokens; their tail is cut "
                       "off (raise max_text_length to keep it)", n_long, len(set(captions)), text.max_length)
    loss_fn = make_unet_loss_fn(mean, std, scale, captions_per_image, texts, noise_scheduler, un, seed=cfg.seed,
                                rank=accelerator.process_index, world=world, device=accelerator.device,
                                lesion_masks=masks, mask_posterior=mask_posterior)
    if un.lesion_weight > 0 and masks is None:
        logger.warning("lesion_weight=%g ignored: not every training row has a mask", un.lesion_weight)
    prompts, real, real_masks, real_heads = _sample_prompts(data, cfg.num_samples, heads)
    sample_conditions = (real_masks, real_heads) if mask_conditioned else None

    def sample(step: int) -> None:
        sample_unet = copy.deepcopy(unet)
        if ema is not None and un.export_ema:
            ema.copy_to(sample_unet)
        grid = text_to_image_grid(vae=vae, unet=sample_unet, text_encoder=text,
                                  noise_scheduler=build_noise_scheduler(un.noise), prompts=prompts, real=real,
                                  steps=cfg.sample_steps, guidance_scale=cfg.sample_guidance_scale, seed=cfg.seed,
                                  conditions=sample_conditions)
        save_grid(grid, cfg.out / "samples" / f"unet-step-{step:07d}.png", accelerator, "unet/samples", step)

    def on_step(step: int) -> None:
        if cfg.sample_every and step % cfg.sample_every == 0 and accelerator.is_main_process:
            sample(step)

    plan = StagePlan(name="unet", max_steps=cfg.stage_max_steps(un),
                     deadline=budget_end - _EXPORT_RESERVE_S if budget_end else None,
                     checkpoint_dir=cfg.out / "checkpoints" / "unet", digest=_digest(cfg, un, data_hash),
                     checkpoint_every=cfg.checkpoint_every, keep_checkpoints=cfg.keep_checkpoints,
                     log_every=cfg.log_every, calibration_steps=cfg.calibration_steps, progress=cfg.progress,
                     resume=cfg.resume, images_per_step=un.batch_size * un.grad_accum * world)
    result = run_stage(accelerator, model=unet, optimizer=build_optimizer(unet.parameters(), un), cfg=un,
                       plan=plan, loss_fn=loss_fn, ema=ema, on_step=on_step)

    # Export: the pipeline folder, the last grid, provenance.
    if accelerator.is_main_process:
        final = copy.deepcopy(unet).eval()
        if ema is not None and un.export_ema:
            ema.copy_to(final)
        save_pipeline(cfg.out, vae=vae, unet=final, text_encoder=text.model, tokenizer=text.tokenizer,
                      scheduler=build_noise_scheduler(un.noise))
        noise_model = _fit_acquisition_noise(cfg, data)
        if not (cfg.sample_every and result.steps % cfg.sample_every == 0):
            sample(result.steps)
        state["unet"] = {"done": True, "exported_ema": bool(ema is not None and un.export_ema),
                         **_result_dict(result)}
        state["complete"] = True
        write_json_atomic(cfg.out / "synthmed.json", provenance(
            kind="ldm", config=cfg.model_dump(mode="json"), seed=cfg.seed,
            data={"path": str(cfg.data), "hash": data_hash, "rows": len(data), "split": cfg.split,
                  "channels": data.channels, "resolution": data.resolution, "bit_depth": data.bit_depth},
            text_encoder=text.describe(),
            latents={"shape": list(mean.shape[1:]), "scaling_factor": scale},
            parameters={"vae": sum(p.numel() for p in vae.parameters()),
                        "unet": sum(p.numel() for p in unet.parameters())},
            stages={"autoencoder": state.get("autoencoder"), "unet": state["unet"]},
            acquisition_noise=noise_model.summary() if noise_model is not None else None,
            **({"conditioning": _conditioning_note(un.condition)} if mask_conditioned else {}),
            processes=world, wall_seconds=time.monotonic() - t_begin))
        save_state()
        card_after_training(cfg.out)
        logger.info("model saved to %s (%.0f s)", cfg.out, time.monotonic() - t_begin)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return cfg.out


def _conditioning_note(condition: str) -> str:
    """How to call a mask-conditioned model (its model card's "Conditioning image" section)."""
    head = ", the head outline grey (128)" if condition == "mask+head" else ""
    return (f"`unet.condition: {condition}`. A `StableDiffusionInpaintPipeline` whose UNet reads a conditioning "
            f"picture: call it with `image=` an L image, black (0) with the lesion white (255){head}, and "
            "`mask_image=` an all-black image of the same size. An empty lesion asks for a slice without one.")


def _fit_acquisition_noise(cfg: LDMTrainConfig, data: TrainingData) -> RicianNoise | None:
    """Fit and store the training images' scanner noise (``synthmed.data.noise``), when asked and grayscale."""
    (cfg.out / NOISE_MODEL_FILE).unlink(missing_ok=True)  # never leave a stale model of other data
    if not cfg.acquisition_noise:
        return None
    if data.channels != 1:
        logger.info("acquisition noise: not modelled for %d-channel images", data.channels)
        return None
    model = fit_noise_model(((img[0] + 1) / 2).numpy() for img in data.images)
    if model is not None:
        write_noise_model(cfg.out, model)
        logger.info("acquisition noise: Rician, sigma %.4f-%.4f (median %.4f) over %d images; stored in %s",
                    *(model.summary()[k] for k in ("min", "max", "median", "n")), NOISE_MODEL_FILE)
    return model


def _broadcast(accelerator, value):
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]
