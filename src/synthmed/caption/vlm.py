"""The part every vision-language captioner shares: prompt, parse, repair, give up honestly.

A chat model (:mod:`synthmed.llm.chat`: local for ``hf:``, a server for ``api:``) only answers
conversations; :class:`VLMCaptioner` builds them from the modality's prompt template,
validates each reply into findings, and when a reply is malformed or partial it sends the
reply back with what was wrong and asks again (``max_parse_retries`` times). An image whose
replies never validate is returned without findings, with every reply kept in ``raw`` and
the reason in ``error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from synthmed.caption.base import CaptionInput, CaptionResult
from synthmed.caption.prompts import PromptTemplate, ReplyError, findings_from_reply, repair_message, template_for
from synthmed.llm.cache import array_digest, digest
from synthmed.llm.chat import ChatMessage, ChatModel, ChatRequest
from synthmed.viz import to_rgb8

RAW_SEPARATOR = "\n--- retry ---\n"


@dataclass
class Conversation:
    """One image's exchange: the template, the image, and the turns after the first question."""

    item: CaptionInput
    template: PromptTemplate
    turns: list[tuple[str, str]] = field(default_factory=list)  # (role, text) after the first user turn

    def request(self) -> ChatRequest:
        """The exchange so far as a chat request: instructions, the image with its question, the later turns."""
        messages = [ChatMessage("system", self.template.system),
                    ChatMessage("user", self.template.user, to_rgb8(self.item.image)),
                    *(ChatMessage(role, text) for role, text in self.turns)]  # type: ignore[arg-type]
        return ChatRequest(tuple(messages), json_schema=self.template.schema)


class VLMCaptioner:
    """Captions images with a vision-language :class:`~synthmed.llm.chat.ChatModel`.

    Args:
        chat: The model that answers (its ``name``, e.g. ``hf:<id>``, keys the cache).
        max_parse_retries: How many times an invalid reply is sent back for repair.
    """

    def __init__(self, chat: ChatModel, *, max_parse_retries: int = 1):
        if max_parse_retries < 0:
            raise ValueError(f"max_parse_retries must be >= 0, got {max_parse_retries}")
        self.chat = chat
        self.name = chat.name
        self.max_parse_retries = max_parse_retries

    @property
    def request_concurrency(self) -> int:
        """Images worth captioning at once, one request each (a server's ``concurrency``; 1 for a local model,
        which captions a batch in one call instead)."""
        return int(getattr(self.chat, "concurrency", 1))

    def cache_key(self, item: CaptionInput) -> str:
        """(image pixels, model, prompt version) -> the key of this image's cached result."""
        return digest(array_digest(item.image), self.name, template_for(item.modality).id)

    def _answer(self, conversations: Sequence[Conversation]) -> list[str | Exception]:
        """One reply per conversation, or the exception that prevented it (transient failures)."""
        return self.chat.answer([conv.request() for conv in conversations])

    def caption(self, items: Sequence[CaptionInput]) -> list[CaptionResult]:
        results: list[CaptionResult | None] = [None] * len(items)
        convs = [Conversation(item, template_for(item.modality)) for item in items]
        replies: list[list[str]] = [[] for _ in items]
        errors: list[str] = [""] * len(items)
        pending = list(range(len(items)))
        for _ in range(self.max_parse_retries + 1):
            if not pending:
                break
            answers = self._answer([convs[i] for i in pending])
            retry: list[int] = []
            for i, answer in zip(pending, answers, strict=True):
                if isinstance(answer, Exception):
                    results[i] = CaptionResult(items[i].key, None, raw=RAW_SEPARATOR.join(replies[i]) or None,
                                               error=f"request failed: {answer}", transient=True)
                    continue
                replies[i].append(answer)
                try:
                    findings = findings_from_reply(answer, items[i].modality)
                except ReplyError as err:
                    errors[i] = str(err)
                    convs[i].turns += [("assistant", answer), ("user", repair_message(str(err)))]
                    retry.append(i)
                    continue
                results[i] = CaptionResult(items[i].key, findings, raw=answer)
            pending = retry
        for i in pending:
            n = len(replies[i])
            results[i] = CaptionResult(items[i].key, None, raw=RAW_SEPARATOR.join(replies[i]),
                                       error=f"unparseable reply after {n} attempt{'s' * (n > 1)}: {errors[i]}")
        return [r for r in results if r is not None]
