"""The ``api:<model>`` captioner: any OpenAI-compatible chat-completions server with image input.

vLLM, Ollama, LM Studio, llama.cpp server, OpenAI, Gemini's OpenAI-compatible endpoint.
The server is ``--base-url`` (or ``SYNTHMED_API_BASE``); the key comes only from
``SYNTHMED_API_KEY`` or ``OPENAI_API_KEY`` (see :mod:`synthmed.llm.api` for how it is kept
out of logs, results and errors). Images are sent as PNG data URLs; the findings schema is
sent as structured output when the server accepts it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from synthmed.caption.base import register_captioner
from synthmed.caption.vlm import Conversation, VLMCaptioner, to_rgb8
from synthmed.llm.api import APIError, ChatClient, image_data_url


def png_bytes(conv: Conversation) -> bytes:
    buf = io.BytesIO()
    to_rgb8(conv.item.image).save(buf, format="PNG")
    return buf.getvalue()


class APICaptioner(VLMCaptioner):
    """Captions through a chat-completions server.

    Args:
        model: The model name the server knows.
        max_parse_retries: See :class:`~synthmed.caption.vlm.VLMCaptioner`.
        **client_options: :class:`~synthmed.llm.api.ChatClient` options (``base_url``,
            ``timeout_s``, ``max_retries``, ``backoff_s``, ``concurrency``, ``max_tokens``, ``seed``).
    """

    def __init__(self, model: str, *, max_parse_retries: int = 1, **client_options: Any):
        super().__init__(max_parse_retries=max_parse_retries)
        self.client = ChatClient(model, **client_options)
        self.name = f"api:{model}"

    def _messages(self, conv: Conversation) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = [
            {"role": "system", "content": conv.template.system},
            {"role": "user", "content": [{"type": "text", "text": conv.template.user},
                                         {"type": "image_url", "image_url": {"url": image_data_url(png_bytes(conv))}}]},
        ]
        msgs += [{"role": role, "content": text} for role, text in conv.turns]
        return msgs

    def _answer(self, conversations: Sequence[Conversation]) -> list[str | Exception]:
        def ask(conv: Conversation) -> str | Exception:
            try:
                return self.client.chat(self._messages(conv), json_schema=conv.template.schema)
            except APIError as err:
                return err

        replies = self.client.map(ask, list(conversations))
        return [r.text if not isinstance(r, Exception) else r for r in replies]


@register_captioner("api")
def _make_api_captioner(**options: object) -> APICaptioner:
    model = str(options.pop("model", "") or "")
    if not model:
        from synthmed.errors import ConfigError

        raise ConfigError("api: needs a model name, e.g. api:gpt-4o-mini or api:qwen2.5-vl-7b")
    return APICaptioner(model, **options)  # type: ignore[arg-type]
