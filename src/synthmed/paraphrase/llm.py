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

from synthmed.llm.cache import ReplyCache, digest
from synthmed.llm.chat import APIChat, ChatMessage, ChatModel, ChatRequest, HFTextChat
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


class LLMParaphraser:
    """Paraphrases from a chat model: cache lookup, the versioned prompt, reply parsing.

    Args:
        chat: The :class:`~synthmed.llm.chat.ChatModel` that writes the rewrites (its ``name`` keys the cache).
        cache: Replies by (caption, model, prompt version, k).
    """

    def __init__(self, chat: ChatModel, cache: ReplyCache | None = None):
        self.chat = chat
        self.name = chat.name
        self.cache = cache

    def paraphrase(self, items: Sequence[ParaphraseInput], k: int) -> list[list[str] | Exception]:
        keys = [digest(item.text, self.name, PROMPT_VERSION, str(k)) for item in items]
        replies: list[str | Exception | None] = [self.cache.get(key) if self.cache else None for key in keys]
        todo = [i for i, r in enumerate(replies) if r is None]
        if todo:
            requests = [ChatRequest((ChatMessage("system", SYSTEM), ChatMessage("user", prompt(items[i].text, k))),
                                    json_schema=SCHEMA, schema_name="paraphrases") for i in todo]
            for i, reply in zip(todo, self.chat.answer(requests), strict=True):
                replies[i] = reply
                if self.cache is not None and isinstance(reply, str):
                    self.cache.put(keys[i], reply)
        return [r if isinstance(r, Exception) else candidates_from_reply(str(r))[:k] for r in replies]


@register_paraphraser("api")
def _make_api(**options: Any) -> LLMParaphraser:
    """A chat-completions server (the same client as the ``api:`` captioner); temperature 0.7 by default."""
    cache = options.pop("cache", None)
    options.setdefault("temperature", 0.7)
    return LLMParaphraser(APIChat(str(options.pop("model", "") or ""), **options), cache)


@register_paraphraser("hf")
def _make_hf(**options: Any) -> LLMParaphraser:
    """A local instruction-tuned text model; greedy (temperature 0) by default, replies up to 400 tokens."""
    cache = options.pop("cache", None)
    options.setdefault("max_new_tokens", 400)
    return LLMParaphraser(HFTextChat(str(options.pop("model", "") or ""), **options), cache)
