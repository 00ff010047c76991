"""The ``hf:<model id or path>`` captioner: a local vision-language model through transformers.

Any model that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load and whose
processor has a chat template: Gemma 3, Qwen2-VL / Qwen2.5-VL, LLaVA and LLaVA-Med style
models, Llama 3.2 Vision (Mllama), Ovis2 (natively supported by transformers; the original
``AIDC-AI/Ovis*`` repositories run their own code and need ``trust_remote_code=True``,
which is never on by default: it executes code from the model repository).

Decoding is greedy and seeded, images are batched with left padding, and the model runs on
the GPU when one is present (bfloat16 there, float32 on a CPU). The model is loaded on the
first batch that is not already cached, so a fully cached rerun never loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthmed.caption.base import register_captioner
from synthmed.caption.vlm import Conversation, VLMCaptioner, to_rgb8
from synthmed.errors import ConfigError

logger = logging.getLogger(__name__)


class HFCaptioner(VLMCaptioner):
    """Captions with a local image-text-to-text model (see module docstring).

    Args:
        model: A hub id or a local directory saved with ``save_pretrained``.
        trust_remote_code: Allow the model repository's own code to run (Ovis originals).
        device: "cuda", "cuda:1", "cpu"...; default: the GPU when present.
        dtype: "bfloat16", "float16" or "float32"; default bfloat16 on a GPU, float32 on a CPU.
        max_new_tokens: Reply length limit.
        seed: Seeds torch before each batch (greedy decoding is deterministic anyway; the seed
            covers models whose processors sample crops).
        max_parse_retries: See :class:`~synthmed.caption.vlm.VLMCaptioner`.
    """

    def __init__(self, model: str, *, trust_remote_code: bool = False, device: str | None = None,
                 dtype: str | None = None, max_new_tokens: int = 256, seed: int = 0, max_parse_retries: int = 1):
        super().__init__(max_parse_retries=max_parse_retries)
        if not model:
            raise ConfigError("hf: needs a model id or path, e.g. hf:google/gemma-3-4b-it")
        looks_local = model.startswith((".", "/", "~")) or Path(model).expanduser().exists()
        if looks_local and not Path(model).expanduser().is_dir():
            raise ConfigError(f"hf:{model}: no such model directory")
        if "ovis" in model.lower() and not trust_remote_code and not _is_native(model):
            raise ConfigError(f"hf:{model}: Ovis repositories run their own code; pass --trust-remote-code to "
                              "allow it (only for repositories you trust)")
        if dtype not in (None, "bfloat16", "float16", "float32"):
            raise ConfigError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model_id = str(Path(model).expanduser()) if looks_local else model
        self.name = f"hf:{model}"
        self.trust_remote_code = trust_remote_code
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self._model: Any = None
        self._processor: Any = None

    def load(self) -> None:
        """Load processor and model (once)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from synthmed.utils.device import resolve_device

        device = resolve_device(self.device)
        dtype = getattr(torch, self.dtype) if self.dtype else (torch.bfloat16 if device.type == "cuda"
                                                                 else torch.float32)
        try:
            processor = AutoProcessor.from_pretrained(self.model_id, trust_remote_code=self.trust_remote_code)
            model = AutoModelForImageTextToText.from_pretrained(self.model_id, dtype=dtype,
                                                                trust_remote_code=self.trust_remote_code)
        except (OSError, ValueError, KeyError) as err:
            hint = "" if self.trust_remote_code else " (a model with its own code needs --trust-remote-code)"
            raise ConfigError(f"cannot load hf:{self.model_id} as an image-text-to-text model: {err}{hint}") from err
        if getattr(processor, "chat_template", None) is None:
            raise ConfigError(f"hf:{self.model_id}: the processor has no chat template; use an instruction-tuned "
                              "model (its processor_config / chat_template.json defines one)")
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # generation appends on the right
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        self._model = model.to(device).eval()
        self._processor = processor
        logger.info("loaded %s on %s (%s)", self.model_id, device, dtype)

    def _messages(self, conv: Conversation) -> list[dict[str, Any]]:
        # The system text goes into the first user turn: not every chat template has a system role.
        msgs: list[dict[str, Any]] = [{"role": "user", "content": [
            {"type": "image", "image": to_rgb8(conv.item.image)}, {"type": "text", "text": conv.question}]}]
        msgs += [{"role": role, "content": [{"type": "text", "text": text}]} for role, text in conv.turns]
        return msgs

    def _answer(self, conversations: Sequence[Conversation]) -> list[str | Exception]:
        import torch

        self.load()
        model, processor = self._model, self._processor
        inputs = processor.apply_chat_template([self._messages(c) for c in conversations], add_generation_prompt=True,
                                               tokenize=True, return_dict=True, return_tensors="pt",
                                               processor_kwargs={"padding": True})
        inputs = inputs.to(model.device)
        if "pixel_values" in inputs and torch.is_floating_point(inputs["pixel_values"]):
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens,
                                 pad_token_id=processor.tokenizer.pad_token_id)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def _is_native(model: str) -> bool:
    """Whether transformers itself implements the model (e.g. Ovis2 converted checkpoints)."""
    path = Path(model).expanduser() / "config.json"
    if path.is_file():
        import json

        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return False
        return "auto_map" not in cfg
    return False


@register_captioner("hf")
def _make_hf_captioner(**options: object) -> HFCaptioner:
    model = str(options.pop("model", "") or "")
    return HFCaptioner(model, **options)  # type: ignore[arg-type]
