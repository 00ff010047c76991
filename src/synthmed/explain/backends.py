"""Vision-language back ends for explanations: one contract, two implementations.

A back end answers (image, prompt) requests with reply text: ``answer(requests) -> list[str | Exception]``.
``hf:<id or path>`` runs a local image-text-to-text model through the captioning package's
loader (:class:`synthmed.caption.hf.HFCaptioner`); ``api:<model>`` sends the request to an
OpenAI-compatible server through :class:`synthmed.llm.api.ChatClient`. Both are greedy and
seeded, so the same request gives the same reply.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from synthmed.errors import ConfigError


@dataclass(frozen=True)
class VLMRequest:
    """One question about one image: (H, W, 3) uint8 RGB and the prompt text."""

    image: np.ndarray
    prompt: str


class VLMBackend(Protocol):
    """(image, prompt) -> reply text."""

    name: str

    def answer(self, requests: Sequence[VLMRequest]) -> list[str | Exception]:
        """One reply per request, in order; an exception in place of a reply that failed."""
        ...


class HFBackend:
    """A local VLM (``hf:<id or path>``) loaded by the captioning package's loader."""

    def __init__(self, model: str, *, device: str | None = None, max_new_tokens: int = 256, seed: int = 0,
                 trust_remote_code: bool = False):
        from synthmed.caption.hf import HFCaptioner

        self._cap = HFCaptioner(model, device=device, max_new_tokens=max_new_tokens, seed=seed,
                                trust_remote_code=trust_remote_code)
        self.name = f"hf:{model}"

    def answer(self, requests: Sequence[VLMRequest]) -> list[str | Exception]:
        import torch

        cap = self._cap
        cap.load()
        model, processor = cap._model, cap._processor
        out: list[str | Exception] = []
        for req in requests:  # one at a time: prompts differ in length and images in content
            msgs = [{"role": "user", "content": [{"type": "image", "image": Image.fromarray(req.image)},
                                                  {"type": "text", "text": req.prompt}]}]
            inputs = processor.apply_chat_template([msgs], add_generation_prompt=True, tokenize=True,
                                                   return_dict=True, return_tensors="pt").to(model.device)
            if "pixel_values" in inputs and torch.is_floating_point(inputs["pixel_values"]):
                inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            torch.manual_seed(cap.seed)
            with torch.inference_mode():
                ids = model.generate(**inputs, do_sample=False, max_new_tokens=cap.max_new_tokens,
                                     pad_token_id=processor.tokenizer.pad_token_id)
            out.append(processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
                       .strip())
        return out


class APIBackend:
    """An OpenAI-compatible chat-completions server (``api:<model>``)."""

    def __init__(self, model: str, **client_options: Any):
        from synthmed.llm.api import ChatClient

        self.client = ChatClient(model, **client_options)
        self.name = f"api:{model}"

    def answer(self, requests: Sequence[VLMRequest]) -> list[str | Exception]:
        from synthmed.llm.api import APIError, image_data_url

        def ask(req: VLMRequest) -> str | Exception:
            buf = io.BytesIO()
            Image.fromarray(req.image).save(buf, format="PNG")
            msgs = [{"role": "user", "content": [{"type": "text", "text": req.prompt},
                                                 {"type": "image_url", "image_url": {"url": image_data_url(
                                                     buf.getvalue())}}]}]
            try:
                return self.client.chat(msgs).text
            except APIError as err:
                return err

        return self.client.map(ask, list(requests))


def get_backend(name: str, **options: Any) -> VLMBackend:
    """``hf:<id or path>`` or ``api:<model>``.

    Raises:
        ConfigError: another prefix, or a missing model name.
    """
    prefix, _, model = name.partition(":")
    if prefix not in ("hf", "api") or not model:
        raise ConfigError(f"unknown VLM back end {name!r}; use hf:<model id or path> or api:<model name>")
    options = {k: v for k, v in options.items() if v is not None}
    if prefix == "hf":
        return HFBackend(model, **{k: v for k, v in options.items() if k in ("device", "max_new_tokens", "seed",
                                                                              "trust_remote_code")})
    return APIBackend(model, **{k: v for k, v in options.items() if k in (
        "base_url", "timeout_s", "max_retries", "backoff_s", "max_backoff_s", "concurrency", "seed", "max_tokens")})
