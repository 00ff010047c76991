"""What differs between SD 1.5 and SDXL when fine-tuning: one small strategy object each.

A family knows its pipeline class, its text encoders and tokenizers, how a prompt becomes
UNet conditioning (exactly as the family's diffusers pipeline encodes it at inference),
and how LoRA weights are saved so that ``pipe.load_lora_weights(dir)`` reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from synthmed.errors import ConfigError

#: ``model_index.json`` ``_class_name`` -> family name.
_PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd15", "StableDiffusionImg2ImgPipeline": "sd15",
    "StableDiffusionInpaintPipeline": "sd15", "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl", "StableDiffusionXLInpaintPipeline": "sdxl",
}


def detect_family(base: str) -> str:
    """``sd15`` or ``sdxl`` from the base's ``model_index.json`` (a local folder or the hub).

    Raises:
        ConfigError: the index is unreadable or names a pipeline this trainer does not know.
    """
    path = Path(base)
    try:
        if path.is_dir():
            index_file = path / "model_index.json"
        else:
            from huggingface_hub import hf_hub_download

            index_file = Path(hf_hub_download(base, "model_index.json"))
        index = json.loads(index_file.read_text())
    except Exception as err:  # noqa: BLE001 - any failure to read the index is the same user error
        raise ConfigError(f"--base {base!r}: cannot read model_index.json to detect the model family ({err}); "
                          "pass --family sd15 or --family sdxl") from err
    name = index.get("_class_name", "")
    if name not in _PIPELINE_FAMILIES:
        raise ConfigError(f"--base {base!r}: pipeline {name!r} is not a Stable Diffusion 1.x/2.x or SDXL pipeline "
                          f"(known: {sorted(_PIPELINE_FAMILIES)}); pass --family to force one")
    return _PIPELINE_FAMILIES[name]


@dataclass
class Conditioning:
    """UNet conditioning of a batch: (B, L, D) token states and SDXL's added conditions."""

    hidden_states: torch.Tensor
    added: dict[str, torch.Tensor] | None = None


class SD15:
    """Stable Diffusion 1.x / 2.x: one CLIP text encoder, last hidden state as context."""

    name = "sd15"
    text_encoders = ("text_encoder",)
    tokenizers = ("tokenizer",)

    @staticmethod
    def pipeline_class():
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline

    def tokenize(self, tokenizers: list, prompts: list[str]) -> list:
        """Per tokenizer, the (B, L) input ids and attention mask, padded and truncated as the pipeline does."""
        return [tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                    return_tensors="pt") for tok in tokenizers]

    def encode(self, text_encoders: list, tokens: list, resolution: int) -> Conditioning:
        # As the pipeline's encode_prompt: the attention mask only for an encoder whose config asks for it
        # (synthmed's from-scratch LDMs use BERT-style encoders trained with masks; CLIP does not).
        te = text_encoders[0]
        mask = tokens[0].attention_mask.to(te.device) if getattr(te.config, "use_attention_mask", False) else None
        return Conditioning(te(tokens[0].input_ids.to(te.device), attention_mask=mask)[0])

    def pipeline_kwargs(self) -> dict:
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

    def save_lora(self, out: Path, unet_layers: dict, te_layers: list[dict | None], metadata: dict) -> None:
        self.pipeline_class().save_lora_weights(
            out, unet_lora_layers=unet_layers, text_encoder_lora_layers=te_layers[0] if te_layers else None,
            unet_lora_adapter_metadata=metadata.get("unet"),
            text_encoder_lora_adapter_metadata=metadata.get("text_encoder") if te_layers else None,
            safe_serialization=True)


class SDXL(SD15):
    """SDXL: two CLIP text encoders (penultimate states concatenated), pooled text + size conditions.

    Images are centre-cropped and resized to a square, so the micro-conditioning
    ``time_ids`` is (original H, W, crop top, left, target H, W) = (r, r, 0, 0, r, r).
    """

    name = "sdxl"
    text_encoders = ("text_encoder", "text_encoder_2")
    tokenizers = ("tokenizer", "tokenizer_2")

    @staticmethod
    def pipeline_class():
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline

    def encode(self, text_encoders: list, tokens: list, resolution: int) -> Conditioning:
        states, pooled = [], None
        for te, tok in zip(text_encoders, tokens, strict=True):  # SDXL's pipeline passes no attention mask
            out = te(tok.input_ids.to(te.device), output_hidden_states=True)
            pooled = out[0]  # the last encoder's projected pooled output
            states.append(out.hidden_states[-2])
        hidden = torch.cat(states, dim=-1)  # (B, 77, D1 + D2)
        b = hidden.shape[0]
        time_ids = torch.tensor([resolution, resolution, 0, 0, resolution, resolution], dtype=hidden.dtype,
                                device=hidden.device).repeat(b, 1)
        return Conditioning(hidden, {"text_embeds": pooled, "time_ids": time_ids})

    def pipeline_kwargs(self) -> dict:
        return {"add_watermarker": False}

    def save_lora(self, out: Path, unet_layers: dict, te_layers: list[dict | None], metadata: dict) -> None:
        te1, te2 = (te_layers + [None, None])[:2] if te_layers else (None, None)
        self.pipeline_class().save_lora_weights(
            out, unet_lora_layers=unet_layers, text_encoder_lora_layers=te1, text_encoder_2_lora_layers=te2,
            unet_lora_adapter_metadata=metadata.get("unet"),
            text_encoder_lora_adapter_metadata=metadata.get("text_encoder") if te1 else None,
            text_encoder_2_lora_adapter_metadata=metadata.get("text_encoder") if te2 else None,
            safe_serialization=True)


FAMILIES = {"sd15": SD15, "sdxl": SDXL}


def get_family(name: str, base: str) -> SD15:
    """The strategy of ``name`` (``auto`` detects it from ``base``)."""
    if name == "auto":
        name = detect_family(base)
    if name not in FAMILIES:
        raise ConfigError(f"unknown --family {name!r}; known: auto, {', '.join(FAMILIES)}")
    return FAMILIES[name]()
