"""``train_kandinsky3``: LoRA on the Kandinsky 3 UNet (seed 001 section 3.2 / 5.2).

Kandinsky 3 feeds the text straight into its UNet (a frozen T5 encoder's token states with
their attention mask, as ``Kandinsky3Pipeline.encode_prompt`` makes them), and decodes movq
latents (unscaled) into the image. LoRA goes into the UNet's attention projections.

``Kandinsky3UNet`` has no diffusers PEFT mixin, so the adapters are injected with peft
directly and saved with peft's key names under a ``unet.`` prefix (adapter config in the
safetensors metadata) as ``OUT/pytorch_lora_weights.safetensors``. A vanilla setup
loads it with peft (no synthmed)::

    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    pipe = Kandinsky3Pipeline.from_pretrained(base)
    inject_adapter_in_model(LoraConfig(r=..., lora_alpha=..., target_modules=[...]), pipe.unet)
    sd = {k.removeprefix("unet."): v for k, v in load_file(f"{OUT}/pytorch_lora_weights.safetensors").items()}
    set_peft_model_state_dict(pipe.unet, sd)

(the rank, alpha and target modules are in ``synthmed.json`` and the file's metadata).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from pydantic import Field

from synthmed.train.finetune.components import check_base, load_component, model_index
from synthmed.train.finetune.config import FinetuneConfig, LoraSpec
from synthmed.train.finetune.core import FinetuneRun, Validation, run_finetune, start
from synthmed.train.finetune.data import cached_latents, load_finetune_data
from synthmed.train.ldm.unet import choose_prompts
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.tmpfiles import save_safetensors

logger = logging.getLogger(__name__)

LORA_FILE = "pytorch_lora_weights.safetensors"
#: Kandinsky3Pipeline.encode_prompt pads and truncates prompts to this many T5 tokens.
MAX_TOKENS = 128


class Kandinsky3LoraSpec(LoraSpec):
    """LoRA of the Kandinsky 3 UNet: every attention projection (``to_q/k/v``, ``to_out.0``)."""

    target_modules: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


class Kandinsky3TrainConfig(FinetuneConfig):
    """``synthmed train kandinsky --kandinsky3``: ``base`` is a Kandinsky 3 pipeline."""

    base: str = "kandinsky-community/kandinsky-3"
    lora: Kandinsky3LoraSpec = Kandinsky3LoraSpec(rank=32)


class Kandinsky3Trainable(torch.nn.Module):
    """Prompts -> frozen T5 states (cached per prompt) -> UNet noise prediction."""

    def __init__(self, unet, text_encoder, tokenizer):
        super().__init__()
        self.unet, self.text_encoder, self.tokenizer = unet, text_encoder, tokenizer
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        todo = sorted({p for p in prompts if p not in self._cache})
        if todo:
            tok = self.tokenizer(todo, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                                 return_attention_mask=True, return_tensors="pt")
            mask = tok.attention_mask.to(noisy.device)
            with torch.no_grad():
                states = self.text_encoder(tok.input_ids.to(noisy.device), attention_mask=mask)[0]
            states = states * mask.unsqueeze(2)  # as the pipeline does: padding tokens are zero
            for i, p in enumerate(todo):
                self._cache[p] = (states[i], mask[i])
        states = torch.stack([self._cache[p][0] for p in prompts])
        mask = torch.stack([self._cache[p][1] for p in prompts])
        dtype = next(self.unet.parameters()).dtype
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=states.to(dtype),
                         encoder_attention_mask=mask, return_dict=False)[0]


@writes_to(first_argument("config", "out"))
def train_kandinsky3(config: Kandinsky3TrainConfig) -> Path:
    """Fine-tune a Kandinsky 3 pipeline's UNet with LoRA; returns ``config.out``.

    Raises:
        DataError: bad dataset; ConfigError: bad base or output directory.
    """
    from diffusers import DDPMScheduler, Kandinsky3Pipeline
    from diffusers.training_utils import cast_training_params
    from peft import inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    cfg = config.model_copy(update={"out": Path(config.out), "data": Path(config.data)})
    data = load_finetune_data(cfg.data, resolution=cfg.resolution, split=cfg.split,
                              use_paraphrases=cfg.use_paraphrases)
    check_base(cfg.base)
    accelerator, data_hash = start(cfg, owned=(LORA_FILE,))
    device = accelerator.device
    index = model_index(cfg.base)
    unet = load_component(cfg.base, "unet", index)
    text_encoder = load_component(cfg.base, "text_encoder", index)
    tokenizer = load_component(cfg.base, "tokenizer", index)
    movq = load_component(cfg.base, "movq", index)
    for m in (unet, text_encoder, movq):
        m.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    lora_config = cfg.lora.peft_config()
    inject_adapter_in_model(lora_config, unet)
    cast_training_params(unet, dtype=torch.float32)
    trainable = Kandinsky3Trainable(unet, text_encoder, tokenizer).to(device)
    latents = cached_latents(movq, data.images, path=cfg.out / "cache" / "latents.safetensors",
                             digest=f"{data_hash}:{cfg.resolution}:{cfg.random_flip}", flip=cfg.random_flip,
                             device=device, is_main=accelerator.is_main_process, wait=accelerator.wait_for_everyone,
                             scaling_factor=1.0)  # Kandinsky decodes unscaled movq latents
    noise_scheduler = DDPMScheduler.from_pretrained(cfg.base, subfolder="scheduler")
    latent_side = int(latents.mean.shape[-1])

    def prompts_fn(items: torch.Tensor, g: torch.Generator) -> list[str]:
        return choose_prompts(data.captions, items, cfg.caption_dropout, g)

    def make_pipeline():
        pipe = Kandinsky3Pipeline(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, movq=movq.to(device),
                                  scheduler=load_component(cfg.base, "scheduler", index))
        return pipe.to(device)

    prompts = list(cfg.validation_prompts) or [c[0] for c in data.captions[:4]]
    # Kandinsky3Pipeline maps height h to (ceil(h / 64) * 8) latent rows: ask for 8 x the training latents.
    validation = Validation(prompts=prompts, real=None, make_pipeline=make_pipeline, steps=cfg.validation_steps,
                            guidance_scale=cfg.validation_guidance_scale, resolution=8 * latent_side, seed=cfg.seed)

    def export(module: torch.nn.Module, result) -> dict:
        net = accelerator.unwrap_model(module).unet
        sd = get_peft_model_state_dict(net, save_embedding_layers=False)  # peft keys: what peft loads back
        sd = {f"unet.{k}": v.detach().float().cpu().contiguous() for k, v in sd.items()}
        meta = lora_config.to_dict()
        meta = {k: sorted(v) if isinstance(v, set) else v for k, v in meta.items()}
        adapter_metadata = json.dumps({f"unet.{k}": v for k, v in meta.items()}, default=str)
        save_safetensors(sd, cfg.out / LORA_FILE, metadata={"format": "pt", "lora_adapter_metadata": adapter_metadata})
        size = (cfg.out / LORA_FILE).stat().st_size
        logger.info("kandinsky 3 LoRA: %s (%.2f MB)", cfg.out / LORA_FILE, size / 1e6)
        return {"lora_file": LORA_FILE, "lora_file_bytes": size, "lora": cfg.lora.model_dump(mode="json")}

    run = FinetuneRun(name="kandinsky3", trainable=trainable, vae=movq, noise_scheduler=noise_scheduler, data=data,
                      item_rows=torch.arange(len(data)), prompts_fn=prompts_fn, export=export,
                      validation=validation, latents=latents)
    run_finetune(accelerator, cfg, run, data_hash=data_hash, extra={"base": cfg.base})
    return cfg.out
