"""Load a text-to-image pipeline with its sampler, LoRAs and textual-inversion embeddings."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from synthmed.errors import ConfigError
from synthmed.generate.adapters import load_embedding, load_loras
from synthmed.generate.schedulers import make_scheduler

logger = logging.getLogger(__name__)


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


#: Text-to-image pipeline class -> its ControlNet pipeline.
CONTROLNET_PIPELINES = {"StableDiffusionPipeline": "StableDiffusionControlNetPipeline",
                        "StableDiffusionXLPipeline": "StableDiffusionXLControlNetPipeline"}


def with_controlnet(pipe, controlnet):
    """The ControlNet pipeline of ``pipe``'s kind around the same components and ``controlnet`` (a model or folder).

    Raises:
        ConfigError: ``pipe`` is not an SD 1.x/2.x or SDXL pipeline, or the ControlNet cannot be loaded.
    """
    import diffusers

    name = CONTROLNET_PIPELINES.get(type(pipe).__name__)
    if name is None:
        raise ConfigError(f"--controlnet works with {', '.join(CONTROLNET_PIPELINES)}; the model is a "
                          f"{type(pipe).__name__}")
    if isinstance(controlnet, str | Path):
        try:
            controlnet = diffusers.ControlNetModel.from_pretrained(controlnet)
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"--controlnet {str(controlnet)!r}: cannot load a ControlNetModel ({err})") from err
    parts = {k: v for k, v in pipe.components.items() if k != "controlnet"}
    extra = {"add_watermarker": False} if "XL" in name else {"requires_safety_checker": False}
    return getattr(diffusers, name)(**parts, controlnet=controlnet, **extra)


def load_pipeline(model: str, *, scheduler: str, loras: list[str] = (), lora_scale: float = 1.0,
                  embeddings: list[str] = (), device: torch.device | str = "cpu", prior: str | None = None,
                  controlnet: str | None = None):
    """A ready-to-call diffusers text-to-image pipeline.

    Args:
        model: Pipeline folder or hub id (``DiffusionPipeline.from_pretrained``); for
            Kandinsky 2.2 the *decoder*.
        scheduler: A name from :mod:`synthmed.generate.schedulers` (Kandinsky 2.2: the
            decoder's sampler; the prior keeps its own).
        loras: LoRA weights, each a folder or ``.safetensors`` file (see
            :mod:`synthmed.generate.adapters`).
        lora_scale: Weight of every LoRA adapter.
        embeddings: Textual-inversion files (``pipe.load_textual_inversion``); the token is
            the one stored in the file.
        device: Where to run.
        prior: The Kandinsky 2.2 prior pipeline (folder or hub id) that goes with a decoder
            ``model``; the two become one ``KandinskyV22CombinedPipeline``.
        controlnet: A ControlNet folder or hub id; the pipeline becomes its ControlNet
            pipeline (:func:`with_controlnet`) and takes an ``image=`` control image.

    Raises:
        ConfigError: the model, a LoRA or an embedding cannot be loaded, a Kandinsky 2.2
            decoder without ``prior``, or ``prior`` with another kind of model.
    """
    check_model_reference(model)
    pipe = _from_pretrained(model, "--model")
    if prior is not None or type(pipe).__name__ == "KandinskyV22Pipeline":
        pipe = _combine_kandinsky22(pipe, model, prior)
    if controlnet is not None:
        pipe = with_controlnet(pipe, controlnet)
    pipe.synthmed_base_scheduler_config = pipe.scheduler.config  # every sampler derives from the model's own
    set_scheduler(pipe, scheduler)
    names = load_loras(pipe, list(loras), lora_scale)
    for emb in embeddings:
        try:
            load_embedding(pipe, emb)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ConfigError(f"--embedding {emb!r}: cannot load a textual-inversion embedding ({err})") from err
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    logger.info("loaded %s (%s, sampler %s, %d LoRA, %d embeddings)", model, type(pipe).__name__, scheduler,
                len(names), len(embeddings))
    return pipe


def set_scheduler(pipe, scheduler: str) -> None:
    """Sample ``pipe`` with the sampler named ``scheduler`` from now on (the model's own noise schedule)."""
    base = getattr(pipe, "synthmed_base_scheduler_config", None) or pipe.scheduler.config
    pipe.scheduler = make_scheduler(scheduler, base)
    if hasattr(pipe, "decoder_pipe"):  # a combined Kandinsky pipeline samples with its decoder's scheduler
        pipe.decoder_pipe.scheduler = pipe.scheduler


def _from_pretrained(model: str, flag: str):
    from diffusers import DiffusionPipeline

    try:
        return DiffusionPipeline.from_pretrained(model)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"{flag} {model!r}: cannot load a diffusers pipeline ({err})") from err


def _combine_kandinsky22(decoder, model: str, prior: str | None):
    """A Kandinsky 2.2 decoder and its prior as one text-to-image ``KandinskyV22CombinedPipeline``."""
    from diffusers import KandinskyV22CombinedPipeline

    if type(decoder).__name__ != "KandinskyV22Pipeline":
        raise ConfigError(f"--prior is only for a Kandinsky 2.2 decoder; --model {model!r} is a "
                          f"{type(decoder).__name__}")
    if prior is None:
        raise ConfigError(f"--model {model!r} is a Kandinsky 2.2 decoder: give its prior with --prior "
                          "(e.g. kandinsky-community/kandinsky-2-2-prior or a local copy)")
    check_model_reference(prior)
    p = _from_pretrained(prior, "--prior")
    if type(p).__name__ != "KandinskyV22PriorPipeline":
        raise ConfigError(f"--prior {prior!r} is a {type(p).__name__}, not a KandinskyV22PriorPipeline")
    return KandinskyV22CombinedPipeline(
        unet=decoder.unet, scheduler=decoder.scheduler, movq=decoder.movq, prior_prior=p.prior,
        prior_image_encoder=p.image_encoder, prior_text_encoder=p.text_encoder, prior_tokenizer=p.tokenizer,
        prior_scheduler=p.scheduler, prior_image_processor=p.image_processor)
