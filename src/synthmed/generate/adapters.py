"""Put LoRA weights and textual-inversion embeddings into any pipeline synthmed fine-tunes.

* SD 1.5 / SDXL (and the from-scratch LDM): ``pipe.load_lora_weights`` and
  ``pipe.load_textual_inversion`` (an SDXL embedding file with ``clip_l`` / ``clip_g``
  goes into both text encoders).
* Kandinsky 2.2 (prior + decoder, one :class:`~diffusers.KandinskyV22CombinedPipeline`):
  each LoRA file is routed by its keys — the prior transformer's start with
  ``transformer_blocks``, the decoder UNet's with its block names — and loaded with the
  model's ``load_lora_adapter`` (these pipelines have no ``load_lora_weights``).
* Kandinsky 3: the UNet has no diffusers adapter API, so the adapter is injected with peft
  from the configuration ``synthmed train kandinsky3`` stores in the file's metadata.

Several LoRAs are active together, each at ``lora_scale``.
"""

from __future__ import annotations

import json
from pathlib import Path

from synthmed.errors import ConfigError

LORA_FILE = "pytorch_lora_weights.safetensors"

#: Key prefixes of a Kandinsky 2.2 prior LoRA (PriorTransformer); anything else is the decoder UNet's.
_PRIOR_KEY_PREFIXES = ("transformer_blocks.", "prior.")


def lora_file(path: str | Path) -> Path:
    """The weights file of a LoRA given as a folder (holding ``pytorch_lora_weights.safetensors``) or a file.

    Raises:
        ConfigError: naming the path when there is no such file.
    """
    p = Path(path)
    if p.is_dir():
        p = p / LORA_FILE
    if not p.is_file():
        raise ConfigError(f"--lora {str(path)!r}: no such file (a LoRA is a folder holding {LORA_FILE}, "
                          "or a .safetensors file)")
    return p


def pipeline_family(pipe) -> str:
    """``kandinsky22``, ``kandinsky3`` or ``sd`` (anything with diffusers' LoRA loader)."""
    name = type(pipe).__name__
    if name.startswith("KandinskyV22"):
        return "kandinsky22"
    if name.startswith("Kandinsky3"):
        return "kandinsky3"
    return "sd"


def load_loras(pipe, loras: list[str], scale: float) -> list[str]:
    """Load every LoRA into ``pipe`` as adapters ``lora0``, ``lora1``... all active at ``scale``.

    Raises:
        ConfigError: a LoRA is missing or does not fit the pipeline.
    """
    family = pipeline_family(pipe)
    names: list[str] = []
    by_module: dict[int, tuple[object, list[str]]] = {}
    for i, lora in enumerate(loras):
        name = f"lora{i}"
        path = lora if family == "sd" else lora_file(lora)
        try:
            if family == "sd":
                pipe.load_lora_weights(str(path), adapter_name=name)
            elif family == "kandinsky22":
                module = _kandinsky22_target(pipe, Path(path))
                module.load_lora_adapter(str(Path(path).parent), prefix=None, weight_name=Path(path).name,
                                         adapter_name=name)
                by_module.setdefault(id(module), (module, []))[1].append(name)
            else:
                _inject_peft_lora(pipe.unet, Path(path), name)
                by_module.setdefault(id(pipe.unet), (pipe.unet, []))[1].append(name)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ConfigError(f"--lora {lora!r}: cannot load LoRA weights into a {type(pipe).__name__} ({err})") \
                from err
        names.append(name)
    if not names:
        return names
    if family == "sd":
        pipe.set_adapters(names, adapter_weights=[scale] * len(names))
    elif family == "kandinsky22":
        for module, module_names in by_module.values():
            module.set_adapters(module_names, weights=[scale] * len(module_names))
    else:
        _activate_peft_adapters(pipe.unet, names, scale)
    return names


def _kandinsky22_target(pipe, path: Path):
    """The prior transformer or the decoder UNet, whichever the LoRA file's keys belong to."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        keys = list(fh.keys())
    if not keys:
        raise ValueError("the file holds no tensors")
    prior = [k.startswith(_PRIOR_KEY_PREFIXES) for k in keys]
    if all(prior):
        return pipe.prior_prior
    if not any(prior):
        return pipe.unet
    raise ValueError("the file mixes prior and decoder keys; give the prior and decoder LoRAs as two --lora")


def _inject_peft_lora(unet, path: Path, name: str) -> None:
    """A Kandinsky 3 UNet LoRA written by ``synthmed train kandinsky3`` (peft keys, config in the metadata)."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        meta = (fh.metadata() or {}).get("lora_adapter_metadata")
    if not meta:
        raise ValueError("no 'lora_adapter_metadata' in the file (not written by synthmed train kandinsky3)")
    fields = {k.removeprefix("unet."): v for k, v in json.loads(meta).items()}
    known = set(LoraConfig.__dataclass_fields__)
    config = LoraConfig(**{k: v for k, v in fields.items() if k in known and k not in ("peft_type", "task_type")})
    inject_adapter_in_model(config, unet, adapter_name=name)
    state = {k.removeprefix("unet."): v for k, v in load_file(str(path)).items()}
    result = set_peft_model_state_dict(unet, state, adapter_name=name)
    if result.unexpected_keys:
        raise ValueError(f"{len(result.unexpected_keys)} keys fit no layer, e.g. {result.unexpected_keys[0]}")


def _activate_peft_adapters(module, names: list[str], scale: float) -> None:
    from peft.tuners.lora import LoraLayer

    for layer in module.modules():
        if isinstance(layer, LoraLayer):
            layer.set_adapter(names)
            for name in names:
                if name in layer.scaling:
                    layer.set_scale(name, scale)


def load_embedding(pipe, path: str) -> None:
    """``load_textual_inversion``; an SDXL file (``clip_l`` / ``clip_g``) goes into both text encoders.

    Raises:
        ConfigError: the pipeline has no textual-inversion loader (Kandinsky).
    """
    if pipeline_family(pipe) != "sd":
        raise ConfigError(f"--embedding {path!r}: {type(pipe).__name__} has no textual-inversion support "
                          "(textual inversion is for SD 1.5 / SDXL and the from-scratch LDM)")
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
