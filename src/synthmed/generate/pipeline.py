"""Load a text-to-image pipeline with its sampler, LoRAs and textual-inversion embeddings."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from synthmed.errors import ConfigError
from synthmed.generate.schedulers import make_scheduler

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"device {device!r} is not a torch device ({err})") from err


def model_id(model: str) -> str:
    """How a model is named in generated rows: a local folder's absolute path, else the hub id."""
    p = Path(model)
    return str(p.resolve()) if p.exists() else model


def check_model_reference(model: str) -> None:
    """Refuse a ``--model`` that is neither an existing folder nor shaped like a hub id (org/name).

    Raises:
        ConfigError: naming the argument.
    """
    if not Path(model).exists() and (model.startswith((".", "/", "~")) or model.count("/") != 1):
        raise ConfigError(f"--model {model!r}: no such folder (and not a hub id of the form org/name)")


def load_pipeline(model: str, *, scheduler: str, loras: list[str] = (), lora_scale: float = 1.0,
                  embeddings: list[str] = (), device: torch.device | str = "cpu"):
    """A ready-to-call diffusers text-to-image pipeline.

    Args:
        model: Pipeline folder or hub id (``DiffusionPipeline.from_pretrained``).
        scheduler: A name from :mod:`synthmed.generate.schedulers`.
        loras: LoRA weights, each a folder or ``.safetensors`` file (``pipe.load_lora_weights``).
        lora_scale: Weight of every LoRA adapter.
        embeddings: Textual-inversion files (``pipe.load_textual_inversion``); the token is
            the one stored in the file.
        device: Where to run.

    Raises:
        ConfigError: the model, a LoRA or an embedding cannot be loaded.
    """
    from diffusers import DiffusionPipeline

    check_model_reference(model)
    try:
        pipe = DiffusionPipeline.from_pretrained(model)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"--model {model!r}: cannot load a diffusers pipeline ({err})") from err
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    names = []
    for i, lora in enumerate(loras):
        name = f"lora{i}"
        try:
            pipe.load_lora_weights(lora, adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ConfigError(f"--lora {lora!r}: cannot load LoRA weights ({err})") from err
        names.append(name)
    if names:
        pipe.set_adapters(names, adapter_weights=[lora_scale] * len(names))
    for emb in embeddings:
        try:
            _load_embedding(pipe, emb)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ConfigError(f"--embedding {emb!r}: cannot load a textual-inversion embedding ({err})") from err
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    logger.info("loaded %s (%s, sampler %s, %d LoRA, %d embeddings)", model, type(pipe).__name__, scheduler,
                len(names), len(embeddings))
    return pipe


def _load_embedding(pipe, path: str) -> None:
    """``load_textual_inversion``; an SDXL file (``clip_l`` / ``clip_g``) goes into both text encoders."""
    if str(path).endswith(".safetensors") and hasattr(pipe, "text_encoder_2"):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            keys, meta = set(fh.keys()), fh.metadata() or {}
            if {"clip_l", "clip_g"} <= keys:
                token = meta.get("token")
                if not token:
                    raise ValueError("SDXL embedding file has no 'token' in its metadata")
                pipe.load_textual_inversion(fh.get_tensor("clip_l"), token=token, text_encoder=pipe.text_encoder,
                                            tokenizer=pipe.tokenizer)
                pipe.load_textual_inversion(fh.get_tensor("clip_g"), token=token, text_encoder=pipe.text_encoder_2,
                                            tokenizer=pipe.tokenizer_2)
                return
    pipe.load_textual_inversion(path)
