"""The ``api:<model>`` captioner: any OpenAI-compatible chat-completions server with image input.

vLLM, Ollama, LM Studio, llama.cpp server, OpenAI, Gemini's OpenAI-compatible endpoint.
The server is ``--base-url`` (or ``SYNTHMED_API_BASE``); the key comes only from
``SYNTHMED_API_KEY`` or ``OPENAI_API_KEY`` (see :mod:`synthmed.llm.api` for how it is kept
out of logs, results and errors). Images are sent as PNG data URLs; the findings schema is
sent as structured output when the server accepts it (:class:`synthmed.llm.chat.APIChat`).
"""

from __future__ import annotations

from typing import Any

from synthmed.caption.base import register_captioner
from synthmed.caption.vlm import VLMCaptioner
from synthmed.llm.chat import APIChat


class APICaptioner(VLMCaptioner):
    """Captions through a chat-completions server.

    Args:
        model: The model name the server knows.
        max_parse_retries: See :class:`~synthmed.caption.vlm.VLMCaptioner`.
        **client_options: :class:`~synthmed.llm.api.ChatClient` options (``base_url``,
            ``timeout_s``, ``max_retries``, ``backoff_s``, ``concurrency``, ``max_tokens``, ``seed``).
    """

    def __init__(self, model: str, *, max_parse_retries: int = 1, **client_options: Any):
        super().__init__(APIChat(model, **client_options), max_parse_retries=max_parse_retries)


@register_captioner("api")
def _make_api_captioner(**options: object) -> APICaptioner:
    model = str(options.pop("model", "") or "")
    return APICaptioner(model, **options)  # type: ignore[arg-type]
