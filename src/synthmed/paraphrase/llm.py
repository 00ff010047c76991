"""LLM paraphrasers: ``hf:<text model>`` (local, transformers) and ``api:<model>`` (chat server).

Both send the same versioned prompt: rewrite the caption ``k`` ways, keep every finding
(side in the patient's convention, lobe, size, shape, signal, orientation, edema, mass
effect), add nothing, reply as ``{"paraphrases": [...]}``. A reply that is not that JSON
is read as one paraphrase per line (numbering stripped) — harmless, because the runner
parses every candidate back into findings and keeps only those that match. Replies are
cached by (caption, model, prompt version, k) like captions are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from synthmed.errors import ConfigError
from synthmed.llm.api import APIError, ChatClient
from synthmed.llm.cache import ReplyCache, digest
from synthmed.llm.replies import ReplyFormatError, extract_json_object
from synthmed.paraphrase.base import ParaphraseInput, register_paraphraser

PROMPT_VERSION = "paraphrase-v1"
SYSTEM = "You rewrite radiology image captions. You never change, add or drop a finding."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"paraphrases": {"type": "array", "items": {"type": "string"}}},
    "required": ["paraphrases"],
    "additionalProperties": False,
}


def prompt(text: str, k: int) -> str:
    """The user message asking for ``k`` paraphrases of ``text``."""
    return (f"Rewrite the caption below in {k} different ways. Every rewrite must state exactly the same findings: "
            "the same side (left/right is the patient's side; keep it as written), lobe or region, size, shape, "
            "signal intensity, orientation, edema and mass effect, or polyp count, sizes and locations — and add "
            "nothing that the caption does not say. Vary the vocabulary, the word order and the register (clinical "
            f'or plain). Reply with one JSON object: {{"paraphrases": [ ... {k} strings ... ]}}.\n\nCaption: {text}')


_NUMBERING = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)]|\d+:)\s*")


def candidates_from_reply(reply: str) -> list[str]:
    """The paraphrases in a reply: the JSON list when there is one, else one per non-empty line."""
    try:
        obj = extract_json_object(reply)
    except ReplyFormatError:
        obj = None
    if obj is not None and isinstance(obj.get("paraphrases"), list):
        return [p.strip() for p in obj["paraphrases"] if isinstance(p, str) and p.strip()]
    lines = [_NUMBERING.sub("", line).strip().strip('"') for line in reply.splitlines()]
    return [line for line in lines if line and not line.endswith(":")]


class _LLMParaphraser:
    """Shared part: cache lookup, prompting, reply parsing. Subclasses implement :meth:`_generate`."""

    name = "llm"

    def __init__(self, cache: ReplyCache | None = None):
        self.cache = cache

    def _generate(self, prompts: Sequence[str]) -> list[str | Exception]:
        raise NotImplementedError

    def paraphrase(self, items: Sequence[ParaphraseInput], k: int) -> list[list[str] | Exception]:
        keys = [digest(item.text, self.name, PROMPT_VERSION, str(k)) for item in items]
        replies: list[str | Exception | None] = [self.cache.get(key) if self.cache else None for key in keys]
        todo = [i for i, r in enumerate(replies) if r is None]
        if todo:
            fresh = self._generate([prompt(items[i].text, k) for i in todo])
            for i, reply in zip(todo, fresh, strict=True):
                replies[i] = reply
                if self.cache is not None and isinstance(reply, str):
                    self.cache.put(keys[i], reply)
        return [r if isinstance(r, Exception) else candidates_from_reply(str(r))[:k] for r in replies]


class APIParaphraser(_LLMParaphraser):
    """Paraphrases from a chat-completions server (the same client as the ``api:`` captioner)."""

    def __init__(self, model: str, *, cache: ReplyCache | None = None, temperature: float = 0.7,
                 **client_options: Any):
        super().__init__(cache)
        self.client = ChatClient(model, temperature=temperature, **client_options)
        self.name = f"api:{model}"

    def _generate(self, prompts: Sequence[str]) -> list[str | Exception]:
        def ask(p: str) -> str | Exception:
            try:
                msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]
                return self.client.chat(msgs, json_schema=SCHEMA, schema_name="paraphrases").text
            except APIError as err:
                return err

        return self.client.map(ask, list(prompts))


class HFParaphraser(_LLMParaphraser):
    """Paraphrases from a local instruction-tuned text model (``AutoModelForCausalLM`` + chat template).

    Args:
        model: Hub id or local directory.
        device: Default: the GPU when present.
        max_new_tokens: Reply length limit.
        temperature: 0 = greedy; > 0 samples (seeded), which gives more varied rewrites.
        seed: Seeds torch before each batch.
    """

    def __init__(self, model: str, *, cache: ReplyCache | None = None, device: str | None = None,
                 max_new_tokens: int = 400, temperature: float = 0.0, seed: int = 0,
                 trust_remote_code: bool = False):
        super().__init__(cache)
        from pathlib import Path

        if not model:
            raise ConfigError("hf: needs a text model id or path, e.g. hf:Qwen/Qwen2.5-1.5B-Instruct")
        self.model_id = str(Path(model).expanduser()) if Path(model).expanduser().exists() else model
        self.name = f"hf:{model}"
        self.device, self.max_new_tokens, self.temperature, self.seed = device, max_new_tokens, temperature, seed
        self.trust_remote_code = trust_remote_code
        self._model: Any = None
        self._tok: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from synthmed.utils.device import resolve_device

        device = resolve_device(self.device)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        try:
            tok = AutoTokenizer.from_pretrained(self.model_id, trust_remote_code=self.trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype,
                                                         trust_remote_code=self.trust_remote_code)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot load hf:{self.model_id} as a text generation model: {err}") from err
        if tok.chat_template is None:
            raise ConfigError(f"hf:{self.model_id}: the tokenizer has no chat template; use an instruction-tuned model")
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._model, self._tok = model.to(device).eval(), tok

    def _generate(self, prompts: Sequence[str]) -> list[str | Exception]:
        import torch

        self._load()
        tok, model = self._tok, self._model
        chats = [[{"role": "user", "content": f"{SYSTEM}\n\n{p}"}] for p in prompts]
        enc = tok.apply_chat_template(chats, add_generation_prompt=True, tokenize=True, return_dict=True,
                                      return_tensors="pt", padding=True).to(model.device)
        torch.manual_seed(self.seed)
        sample = self.temperature > 0
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
                                 temperature=self.temperature if sample else None, pad_token_id=tok.pad_token_id)
        return [t.strip() for t in tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]


@register_paraphraser("api")
def _make_api(**options: Any) -> APIParaphraser:
    model = str(options.pop("model", "") or "")
    if not model:
        raise ConfigError("api: needs a model name, e.g. api:gpt-4o-mini")
    return APIParaphraser(model, **options)


@register_paraphraser("hf")
def _make_hf(**options: Any) -> HFParaphraser:
    return HFParaphraser(str(options.pop("model", "") or ""), **options)
