"""``train_kandinsky``: LoRA on the Kandinsky 2.2 prior and decoder, in seed 001's staged order.

Kandinsky 2.2 makes an image in two models (seed 001 section 3.1): the *prior* maps the
CLIP text embedding of a prompt to a CLIP *image* embedding, the *decoder* (a UNet on movq
latents) turns that image embedding into an image. Both train on the same data:

* decoder: noise prediction on the movq latents of a training image, conditioned on the
  CLIP image embedding of that same image (frozen CLIP vision encoder of the prior repo);
* prior: x0-prediction of the normalised CLIP image embedding ``(e - clip_mean) / clip_std``
  from its noised version, conditioned on the caption's CLIP text states.

Both targets are computed once (movq latents and image embeddings are cached). LoRA goes in
through peft (diffusers' own Kandinsky LoRA examples use a removed attention-processor API).

Seed 001 section 5.1 trains in three stages: the decoder first (rank 32), then the prior
with the tuned decoder (ranks 4..128; 128 best), then the decoder again with the tuned prior.
``stage="staged"`` runs exactly that into ``OUT/stage1-decoder``, ``OUT/stage2-prior`` and
``OUT/stage3-decoder``; stage 3 continues from stage 1's decoder LoRA. The tuned other half
is what the validation grids of a stage sample with (a decoder's training targets do not
depend on the prior). ``stage="prior"`` / ``"decoder"`` run one stage; ``prior_lora`` /
``decoder_lora_init`` point at an earlier stage's output.

Outputs (per stage directory): ``pytorch_lora_weights.safetensors`` written by
``save_lora_adapter``; vanilla diffusers loads it with
``pipe.unet.load_lora_adapter(dir, prefix=None, weight_name="pytorch_lora_weights.safetensors")`` on a
``KandinskyV22Pipeline`` and ``prior_pipe.prior.load_lora_adapter(...)`` (same arguments) on a
``KandinskyV22PriorPipeline`` (these pipelines have no ``load_lora_weights``; without ``weight_name``
diffusers looks for a ``.bin`` file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator

from synthmed.errors import ConfigError
from synthmed.train.finetune.components import check_base, load_component, model_index
from synthmed.train.finetune.config import FinetuneConfig, FinetuneOptimConfig, LoraSpec
from synthmed.train.finetune.core import FinetuneRun, Validation, run_finetune, start, weight_dtype
from synthmed.train.finetune.data import FinetuneData, LatentCache, cached_latents, load_finetune_data
from synthmed.train.ldm.unet import choose_prompts
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.tmpfiles import apply_umask

logger = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"
_KANDINSKY_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_v_proj"]


class KandinskyLoraSpec(LoraSpec):
    """LoRA of the prior / decoder: also the decoder's added key/value projections (image-embedding tokens)."""

    target_modules: list[str] = Field(default_factory=lambda: list(_KANDINSKY_TARGETS))


class KandinskyTrainConfig(FinetuneConfig):
    """``synthmed train kandinsky``.

    Attributes:
        prior: The Kandinsky 2.2 prior pipeline (hub id or folder).
        decoder: The Kandinsky 2.2 decoder pipeline.
        stage: ``decoder``, ``prior`` or ``staged`` (decoder -> prior -> decoder, seed 001).
        prior_lora: A trained prior LoRA directory used for validation grids of a decoder stage.
        decoder_lora_init: Start the decoder LoRA from this directory (and use it in prior validation).
    """

    base: str = ""
    prior: str = "kandinsky-community/kandinsky-2-2-prior"
    decoder: str = "kandinsky-community/kandinsky-2-2-decoder"
    stage: Literal["prior", "decoder", "staged"] = "staged"
    prior_lora_spec: KandinskyLoraSpec = KandinskyLoraSpec(rank=128)  # seed 001: best prior rank
    decoder_lora_spec: KandinskyLoraSpec = KandinskyLoraSpec(rank=32)  # seed 001: stage-1 decoder rank
    prior_lora: Path | None = None
    decoder_lora_init: Path | None = None
    optim: FinetuneOptimConfig = FinetuneOptimConfig(min_snr_gamma=None)
    validation_guidance_scale: float = Field(4.0, ge=0)

    @model_validator(mode="after")
    def _check_kandinsky(self) -> KandinskyTrainConfig:
        if self.random_flip:
            raise ValueError("random_flip is not supported for Kandinsky (the image embeddings are of unflipped "
                             "images)")
        if not self.base:
            self.base = self.decoder
        return self


class PriorTrainable(torch.nn.Module):
    """Prompts -> CLIP text states -> prior's prediction of the normalised image embedding."""

    def __init__(self, prior, text_encoder, tokenizer):
        super().__init__()
        self.prior, self.text_encoder, self.tokenizer = prior, text_encoder, tokenizer
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        todo = sorted({p for p in prompts if p not in self._cache})
        if todo:  # the text encoder is frozen: encode each distinct prompt once
            tok = self.tokenizer(todo, padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt")
            with torch.no_grad():
                out = self.text_encoder(tok.input_ids.to(noisy.device))
            for i, p in enumerate(todo):
                self._cache[p] = (out.text_embeds[i], out.last_hidden_state[i], tok.attention_mask[i].bool())
        embeds = torch.stack([self._cache[p][0] for p in prompts])
        states = torch.stack([self._cache[p][1] for p in prompts])
        mask = torch.stack([self._cache[p][2] for p in prompts]).to(noisy.device)
        dtype = next(self.prior.parameters()).dtype
        return self.prior(noisy.to(dtype), timestep=timesteps, proj_embedding=embeds.to(dtype),
                          encoder_hidden_states=states.to(dtype), attention_mask=mask).predicted_image_embedding


class DecoderTrainable(torch.nn.Module):
    """CLIP image embeddings -> decoder UNet's noise prediction (the first 4 of its 8 channels)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        dtype = next(self.unet.parameters()).dtype
        out = self.unet(noisy.to(dtype), timesteps, None,
                        added_cond_kwargs={"image_embeds": image_embeds.to(noisy.device, dtype)}).sample
        return out[:, :4]  # the rest is the learned variance


@torch.no_grad()
def clip_image_embeds(image_encoder, images: torch.Tensor, mean: list[float], std: list[float],
                      device: torch.device, batch_size: int = 16) -> torch.Tensor:
    """(N, D) CLIP image embeddings of (N, 3, H, W) images in [-1, 1], CLIP-preprocessed in torch."""
    size = image_encoder.config.image_size
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    out = []
    for first in range(0, len(images), batch_size):
        x = (images[first:first + batch_size] + 1) / 2
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        x = ((x - m) / s).to(device, next(image_encoder.parameters()).dtype)
        out.append(image_encoder(pixel_values=x).image_embeds.float().cpu())
    return torch.cat(out)


class _KandinskyPipe:
    """Prior pipeline then decoder pipeline behind the ``pipe(prompts, ...)`` call validation makes."""

    def __init__(self, prior_pipe, decoder_pipe):
        self.prior_pipe, self.decoder_pipe = prior_pipe, decoder_pipe

    def set_progress_bar_config(self, **kw) -> None:
        self.prior_pipe.set_progress_bar_config(**kw)
        self.decoder_pipe.set_progress_bar_config(**kw)

    def __call__(self, prompts, *, num_inference_steps, guidance_scale, generator, height, width, output_type):
        emb = self.prior_pipe(prompts, num_inference_steps=num_inference_steps, generator=generator,
                              guidance_scale=guidance_scale)
        return self.decoder_pipe(image_embeds=emb.image_embeds, negative_image_embeds=emb.negative_image_embeds,
                                 num_inference_steps=num_inference_steps, generator=generator, height=height,
                                 width=width, guidance_scale=guidance_scale, output_type=output_type)


def _load_lora_into(module, path: Path | None, what: str) -> None:
    if path is None:
        return
    if not (Path(path) / LORA_FILE).is_file():
        raise ConfigError(f"{what} {str(path)!r}: no {LORA_FILE} in it")
    module.load_lora_adapter(str(path), prefix=None, weight_name=LORA_FILE, adapter_name="default")


def _run_stage(cfg: KandinskyTrainConfig, which: str, out: Path, data: FinetuneData, data_hash: str, accelerator,
               *, prior_lora: Path | None, decoder_init: Path | None) -> Path:
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, KandinskyV22PriorPipeline
    from diffusers.training_utils import cast_training_params

    cfg = cfg.model_copy(update={"out": out})
    dtype = weight_dtype(accelerator.mixed_precision)
    device = accelerator.device
    p_index, d_index = model_index(cfg.prior), model_index(cfg.decoder)
    prior = load_component(cfg.prior, "prior", p_index)
    image_encoder = load_component(cfg.prior, "image_encoder", p_index)
    text_encoder = load_component(cfg.prior, "text_encoder", p_index)
    tokenizer = load_component(cfg.prior, "tokenizer", p_index)
    processor = load_component(cfg.prior, "image_processor", p_index)
    unet = load_component(cfg.decoder, "unet", d_index)
    movq = load_component(cfg.decoder, "movq", d_index)
    for m in (prior, image_encoder, text_encoder, unet, movq):
        m.requires_grad_(False)
    image_encoder.to(device)

    # Targets, computed once: CLIP image embeddings (both stages) and movq latents (decoder).
    embeds = clip_image_embeds(image_encoder, data.images, processor.image_mean, processor.image_std, device)
    torch.manual_seed(cfg.seed)
    if which == "decoder":
        _load_lora_into(prior, prior_lora, "prior_lora")
        if decoder_init is not None:
            _load_lora_into(unet, decoder_init, "decoder_lora_init")  # stage 3 continues stage 1
            for n, p in unet.named_parameters():
                p.requires_grad_("lora_" in n)
        else:
            unet.add_adapter(cfg.decoder_lora_spec.peft_config())
        cast_training_params(unet, dtype=torch.float32)
        trainable: torch.nn.Module = DecoderTrainable(unet)
        noise_scheduler = DDPMScheduler.from_pretrained(cfg.decoder, subfolder="scheduler")
        latents = cached_latents(movq, data.images, path=out / "cache" / "latents.safetensors",
                                 digest=f"{data_hash}:{cfg.resolution}", flip=False, device=device,
                                 is_main=accelerator.is_main_process, wait=accelerator.wait_for_everyone,
                                 scaling_factor=1.0)  # Kandinsky's decoder works on unscaled movq latents

        def cond_fn(items: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            return embeds[items]
    else:
        _load_lora_into(unet, decoder_init, "decoder_lora_init")
        prior.add_adapter(cfg.prior_lora_spec.peft_config())
        cast_training_params(prior, dtype=torch.float32)
        text_encoder.to(device, dtype)
        trainable = PriorTrainable(prior, text_encoder, tokenizer)
        prior_cfg = DDPMScheduler.from_pretrained(cfg.prior, subfolder="scheduler").config
        noise_scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="sample",
                                        num_train_timesteps=prior_cfg.num_train_timesteps)
        normalised = (embeds - prior.clip_mean.detach().float().cpu()) / prior.clip_std.detach().float().cpu()
        latents = LatentCache(mean=normalised[None], std=torch.zeros_like(normalised)[None], scaling_factor=1.0)

        def cond_fn(items: torch.Tensor, g: torch.Generator) -> list[str]:
            return choose_prompts(data.captions, items, cfg.caption_dropout, g)

    trainable.to(device)
    if cfg.optim.gradient_checkpointing and which == "decoder":
        unet.enable_gradient_checkpointing()

    def make_pipeline():
        prior_pipe = KandinskyV22PriorPipeline(prior=prior, image_encoder=image_encoder, text_encoder=text_encoder,
                                               tokenizer=tokenizer, image_processor=processor,
                                               scheduler=load_component(cfg.prior, "scheduler", p_index))
        decoder_pipe = KandinskyV22Pipeline(unet=unet, movq=movq.to(device),
                                            scheduler=load_component(cfg.decoder, "scheduler", d_index))
        return _KandinskyPipe(prior_pipe.to(device), decoder_pipe.to(device))

    prompts = list(cfg.validation_prompts) or [c[0] for c in data.captions[:4]]
    validation = Validation(prompts=prompts, real=None, make_pipeline=make_pipeline, steps=cfg.validation_steps,
                            guidance_scale=cfg.validation_guidance_scale, resolution=cfg.resolution, seed=cfg.seed)

    def export(module: torch.nn.Module, result) -> dict:
        net = accelerator.unwrap_model(module)
        net = net.unet if which == "decoder" else net.prior
        net.save_lora_adapter(str(out), adapter_name="default", upcast_before_saving=True, safe_serialization=True)
        apply_umask(out / LORA_FILE)
        size = (out / LORA_FILE).stat().st_size
        logger.info("kandinsky %s LoRA: %s (%.2f MB)", which, out / LORA_FILE, size / 1e6)
        return {"lora_file": LORA_FILE, "lora_file_bytes": size}

    run = FinetuneRun(name=f"kandinsky_{which}", trainable=trainable, vae=movq, noise_scheduler=noise_scheduler,
                      data=data, item_rows=torch.arange(len(data)), prompts_fn=cond_fn, export=export,
                      validation=validation, latents=latents)
    run_finetune(accelerator, cfg, run, data_hash=data_hash,
                 extra={"prior": cfg.prior, "decoder": cfg.decoder, "stage": which,
                        "prior_lora": str(prior_lora) if prior_lora else None,
                        "decoder_lora_init": str(decoder_init) if decoder_init else None})
    return out


@writes_to(first_argument("config", "out"))
def train_kandinsky(config: KandinskyTrainConfig) -> Path:
    """Fine-tune Kandinsky 2.2 with LoRA: one stage, or seed 001's decoder -> prior -> decoder.

    Returns:
        ``config.out`` (one stage) or its parent of ``stage1-decoder/``, ``stage2-prior/``, ``stage3-decoder/``.

    Raises:
        DataError: bad dataset; ConfigError: bad prior/decoder/output directory or LoRA paths.
    """
    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    data = load_finetune_data(cfg.data, resolution=cfg.resolution, split=cfg.split,
                              use_paraphrases=cfg.use_paraphrases)
    check_base(cfg.prior, "--prior")
    check_base(cfg.decoder, "--decoder")
    for flag, path in (("--prior-lora", cfg.prior_lora), ("--decoder-lora-init", cfg.decoder_lora_init)):
        if path is not None and not (Path(path) / LORA_FILE).is_file():
            raise ConfigError(f"{flag} {str(path)!r}: no {LORA_FILE} in it")
    if cfg.stage != "staged":
        accelerator, data_hash = start(cfg, owned=(LORA_FILE,))
        return _run_stage(cfg, cfg.stage, cfg.out, data, data_hash, accelerator, prior_lora=cfg.prior_lora,
                          decoder_init=cfg.decoder_lora_init)
    plan = [("decoder", cfg.out / "stage1-decoder"), ("prior", cfg.out / "stage2-prior"),
            ("decoder", cfg.out / "stage3-decoder")]
    done: dict[str, Path] = {}
    for i, (which, out) in enumerate(plan):
        if (out / LORA_FILE).is_file() and cfg.resume:
            logger.info("kandinsky stage %d (%s): done earlier (%s)", i + 1, which, out)
        else:
            sub = cfg.model_copy(update={"out": out})
            accelerator, data_hash = start(sub, owned=(LORA_FILE,))
            prior_lora = done.get("prior") if which == "decoder" else None
            decoder_init = done.get("decoder")
            _run_stage(sub, which, out, data, data_hash, accelerator, prior_lora=prior_lora,
                       decoder_init=decoder_init)
        done[which] = out
    return cfg.out
