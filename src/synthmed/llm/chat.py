"""One contract for every language model synthmed talks to: messages in, reply text out.

Captioning (:mod:`synthmed.caption`), paraphrasing (:mod:`synthmed.paraphrase`) and
explanation (:mod:`synthmed.explain`) are prompt-and-parse layers over a :class:`ChatModel`;
none of them loads, calls or wraps the errors of a model itself. Three implementations:

* :class:`HFVisionChat` — ``hf:<id or path>`` image-text-to-text models
  (``AutoModelForImageTextToText`` + ``AutoProcessor``: Gemma 3, Qwen2-VL, LLaVA, Mllama, Ovis2);
* :class:`HFTextChat` — ``hf:<id or path>`` text models (``AutoModelForCausalLM`` + a chat template);
* :class:`APIChat` — ``api:<model>`` on any OpenAI-compatible chat-completions server
  (:class:`synthmed.llm.api.ChatClient`: retries, concurrency, the key kept out of every log).

Local models load on their first request, run greedy (or seeded sampling) decoding in batches
with left padding, on the GPU when present (bfloat16 there, float32 on a CPU). A system
message is folded into the first user turn for local models, because not every chat template
has a system role. A request that fails comes back as an exception in its reply's place.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image

from synthmed.errors import ConfigError

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One turn: its role, its text and, for vision models, an (H, W, 3) uint8 RGB image."""

    role: Role
    text: str
    image: np.ndarray | None = None


@dataclass(frozen=True)
class ChatRequest:
    """One conversation to answer; ``json_schema`` asks a server for structured output (local models ignore it)."""

    messages: tuple[ChatMessage, ...]
    json_schema: dict[str, Any] | None = None
    schema_name: str = "reply"


class ChatModel(Protocol):
    """Answers conversations: one reply text (or the exception that prevented it) per request, in order."""

    name: str

    def answer(self, requests: Sequence[ChatRequest]) -> list[str | Exception]: ...

    def close(self) -> None: ...


def local_model_id(model: str, *, kind: str, example: str) -> str:
    """A hub id as given, or a local directory made absolute; refuses an empty or missing one."""
    if not model:
        raise ConfigError(f"hf: needs {kind} id or path, e.g. hf:{example}")
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not path.is_dir():
        raise ConfigError(f"hf:{model}: no such model directory")
    return str(path) if looks_local else model


def _torch_dtype(dtype: str | None, device) -> Any:
    """The named torch dtype (checked in ``_LocalChat.__init__``), else bfloat16 on a GPU and float32 on a CPU."""
    import torch

    return getattr(torch, dtype) if dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)


def _folded(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Messages with leading system text moved into the first user turn."""
    system = [m.text for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    if system and rest and rest[0].role == "user":
        first = rest[0]
        rest[0] = ChatMessage("user", "\n\n".join([*system, first.text]), first.image)
    return rest


class _LocalChat:
    """What both local back ends share: options, lazy loading, seeded batched generation."""

    kind = "model"

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None,
                 max_new_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                 trust_remote_code: bool = False, example: str = "org/model"):
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if dtype not in (None, "bfloat16", "float16", "float32"):
            raise ConfigError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}")
        self.model_id = local_model_id(model, kind=self.kind, example=example)
        self.name = f"hf:{model}"
        self.device, self.dtype = device, dtype
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.trust_remote_code = trust_remote_code
        self.model: Any = None
        self.processor: Any = None  # a processor (vision) or a tokenizer (text)

    def load(self) -> None:
        """Load the model once (on the first request)."""
        if self.model is not None:
            return
        from synthmed.utils.device import resolve_device

        device = resolve_device(self.device)
        dtype = _torch_dtype(self.dtype, device)
        try:
            model, processor = self._load(dtype)
        except (OSError, ValueError, KeyError) as err:
            hint = "" if self.trust_remote_code else " (a model with its own code needs --trust-remote-code)"
            raise ConfigError(f"cannot load hf:{self.model_id} as {self.kind}: {err}{hint}") from err
        if getattr(processor, "chat_template", None) is None:
            raise ConfigError(f"hf:{self.model_id}: no chat template; use an instruction-tuned model")
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"  # generation appends on the right
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.processor = model.to(device).eval(), processor
        logger.info("loaded %s on %s (%s)", self.model_id, device, dtype)

    def _load(self, dtype) -> tuple[Any, Any]:
        raise NotImplementedError

    def _encode(self, chats: list[list[dict[str, Any]]]) -> Any:
        raise NotImplementedError

    def _chat(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def answer(self, requests: Sequence[ChatRequest]) -> list[str | Exception]:
        import torch

        if not requests:
            return []
        self.load()
        inputs = self._encode([self._chat(_folded(r.messages)) for r in requests]).to(self.model.device)
        if "pixel_values" in inputs and torch.is_floating_point(inputs["pixel_values"]):
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        sample = self.temperature > 0
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, do_sample=sample, temperature=self.temperature if sample else None,
                                      max_new_tokens=self.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]

    def close(self) -> None:
        """Nothing to release (the model is freed with the object)."""


class HFVisionChat(_LocalChat):
    """A local image-text-to-text model (see the module docstring)."""

    kind = "an image-text-to-text model"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, example="google/gemma-3-4b-it", **options)
        # The original AIDC-AI/Ovis* repositories run their own code; transformers' converted Ovis2 does not.
        if "ovis" in model.lower() and not self.trust_remote_code and not _is_native(self.model_id):
            raise ConfigError(f"hf:{model}: Ovis repositories run their own code; pass --trust-remote-code to "
                              "allow it (only for repositories you trust)")

    def _load(self, dtype) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(self.model_id, trust_remote_code=self.trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(self.model_id, dtype=dtype,
                                                            trust_remote_code=self.trust_remote_code)
        return model, processor

    def _chat(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        chat = []
        for m in messages:
            content: list[dict[str, Any]] = [] if m.image is None else [{"type": "image",
                                                                          "image": Image.fromarray(m.image)}]
            chat.append({"role": m.role, "content": [*content, {"type": "text", "text": m.text}]})
        return chat

    def _encode(self, chats: list[list[dict[str, Any]]]) -> Any:
        return self.processor.apply_chat_template(chats, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                  return_tensors="pt", processor_kwargs={"padding": True})


class HFTextChat(_LocalChat):
    """A local instruction-tuned text model (images in a request are refused)."""

    kind = "a text generation model"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, example="Qwen/Qwen2.5-1.5B-Instruct", **options)

    def _load(self, dtype) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.model_id, trust_remote_code=self.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype,
                                                     trust_remote_code=self.trust_remote_code)
        return model, tok

    def _chat(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        if any(m.image is not None for m in messages):
            raise ConfigError(f"{self.name} is a text model; it cannot read images")
        return [{"role": m.role, "content": m.text} for m in messages]

    def _encode(self, chats: list[list[dict[str, Any]]]) -> Any:
        return self.processor.apply_chat_template(chats, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                  return_tensors="pt", padding=True)


def png_data_url(image: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a PNG data URL."""
    from synthmed.llm.api import image_data_url

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return image_data_url(buf.getvalue())


class APIChat:
    """An OpenAI-compatible chat-completions server (``api:<model>``).

    Args:
        model: The model name the server knows.
        **client_options: :class:`~synthmed.llm.api.ChatClient` options (``base_url``, ``timeout_s``,
            ``max_retries``, ``backoff_s``, ``concurrency``, ``max_tokens``, ``temperature``, ``seed``).
    """

    def __init__(self, model: str, **client_options: Any):
        from synthmed.llm.api import ChatClient

        if not model:
            raise ConfigError("api: needs a model name, e.g. api:gpt-4o-mini or api:qwen2.5-vl-7b")
        self.client = ChatClient(model, **client_options)
        self.name = f"api:{model}"

    @property
    def concurrency(self) -> int:
        """Requests the server may have in flight at once (the client's ``concurrency``)."""
        return self.client.concurrency

    @staticmethod
    def messages(request: ChatRequest) -> list[dict[str, Any]]:
        """The request in the chat-completions format (images as PNG data URLs after the text)."""
        out: list[dict[str, Any]] = []
        for m in request.messages:
            if m.image is None:
                out.append({"role": m.role, "content": m.text})
            else:
                out.append({"role": m.role, "content": [{"type": "text", "text": m.text},
                                                        {"type": "image_url", "image_url": {"url": png_data_url(
                                                            m.image)}}]})
        return out

    def answer(self, requests: Sequence[ChatRequest]) -> list[str | Exception]:
        from synthmed.llm.api import APIError

        def ask(req: ChatRequest) -> str | Exception:
            try:
                return self.client.chat(self.messages(req), json_schema=req.json_schema,
                                        schema_name=req.schema_name).text
            except APIError as err:
                return err

        return self.client.map(ask, list(requests))

    def close(self) -> None:
        self.client.close()


def chat_model(ref: str, *, vision: bool, what: str = "model", **options: Any) -> ChatModel:
    """``hf:<id or path>`` (a vision or a text model) or ``api:<model>``, with the options each takes.

    Options a back end does not take are dropped (None values too), so callers pass one set.
    ``what`` names the role in the error for another prefix (e.g. "VLM back end").
    """
    prefix, _, model = ref.partition(":")
    if prefix not in ("hf", "api") or not model:
        raise ConfigError(f"unknown {what} {ref!r}; use hf:<model id or path> or api:<model name>")
    options = {k: v for k, v in options.items() if v is not None}
    if prefix == "hf":
        local = {k: v for k, v in options.items() if k in ("device", "dtype", "max_new_tokens", "temperature", "seed",
                                                             "trust_remote_code")}
        return HFVisionChat(model, **local) if vision else HFTextChat(model, **local)
    remote = {k: v for k, v in options.items() if k in ("base_url", "timeout_s", "max_retries", "backoff_s",
                                                         "max_backoff_s", "concurrency", "seed", "max_tokens",
                                                         "temperature")}  # the key: from the environment only
    return APIChat(model, **remote)


def _is_native(model_dir: str) -> bool:
    """Whether transformers itself implements a local model (no ``auto_map`` to the repository's own code)."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return False
    try:
        return "auto_map" not in json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
