"""A small client for OpenAI-compatible chat-completions servers.

Built for long captioning jobs against servers that throttle or fail now and then:

* the API key is read from an environment variable (``SYNTHMED_API_KEY``, falling back to
  ``OPENAI_API_KEY``) and only ever placed in the ``Authorization`` header — it is never
  logged, written, stored in results or included in an error message (any text that comes
  back from the server is scrubbed of it as well);
* every request has a timeout; 429, 5xx, timeouts and connection errors are retried with
  exponential backoff (a server's ``Retry-After`` is respected, up to ``max_backoff_s``);
* :meth:`ChatClient.map` runs many requests with bounded concurrency;
* structured output: a JSON schema is sent as ``response_format``; a server that rejects
  it (HTTP 400/422 naming ``response_format``) is asked again without it, once, and the
  client remembers not to send it again.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from synthmed.errors import ConfigError, SynthmedError

logger = logging.getLogger(__name__)

API_KEY_ENV = ("SYNTHMED_API_KEY", "OPENAI_API_KEY")
API_BASE_ENV = "SYNTHMED_API_BASE"
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class APIError(SynthmedError):
    """A chat request failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def api_key_from_env() -> str | None:
    """The API key from ``SYNTHMED_API_KEY`` or, failing that, ``OPENAI_API_KEY`` (None if neither)."""
    for name in API_KEY_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def close_chat(layer: object) -> None:
    """Close ``layer.chat`` (the :class:`~synthmed.llm.chat.ChatModel` a captioner or paraphraser uses), if any."""
    close = getattr(getattr(layer, "chat", None), "close", None)
    if close is not None:
        close()


@dataclass
class APIStats:
    """Counters of one client (thread-safe updates through :meth:`ChatClient._count`)."""

    requests: int = 0
    succeeded: int = 0
    retries: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    schema_fallbacks: int = 0


@dataclass
class ChatReply:
    """One successful completion: the assistant's text and the token usage, if reported."""

    text: str
    usage: dict[str, Any] | None = None


class ChatClient:
    """Chat completions against ``base_url`` (e.g. ``http://localhost:8000/v1``).

    Args:
        model: The model name the server knows.
        base_url: Server root up to and including ``/v1``; default ``$SYNTHMED_API_BASE``.
        api_key: Only for programmatic use; default from the environment (see module doc).
        timeout_s: Per-request timeout (connect, read, write).
        max_retries: Retries after the first attempt on 429/5xx/timeouts/connection errors.
        backoff_s: First backoff; doubles per retry, with up to 25 % random jitter.
        max_backoff_s: Upper bound of a backoff, also of a server's ``Retry-After``.
        concurrency: Requests in flight at once in :meth:`map`.
        temperature: Sampling temperature (0 = greedy).
        seed: Sent to servers that accept a ``seed``; also seeds the backoff jitter.
        max_tokens: Reply length limit.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 60.0, max_retries: int = 5, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 concurrency: int = 4, temperature: float = 0.0, seed: int | None = 0, max_tokens: int = 512):
        import httpx

        base_url = base_url or os.environ.get(API_BASE_ENV, "").strip()
        if not base_url:
            raise ConfigError(f"no server given for api:{model}: pass --base-url URL (e.g. http://localhost:8000/v1) "
                              f"or set {API_BASE_ENV}")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"--base-url must start with http:// or https://, got {base_url!r}")
        for name, value in (("timeout_s", timeout_s), ("concurrency", concurrency)):
            if value <= 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._key = api_key if api_key is not None else api_key_from_env()
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = concurrency
        self.temperature = temperature
        self.seed = seed
        self.max_tokens = max_tokens
        self.structured_output = True  # set to False once the server rejects response_format
        self.stats = APIStats()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers)
        self._httpx = httpx

    def __repr__(self) -> str:  # never show the key
        return f"ChatClient(model={self.model!r}, base_url={self.base_url!r}, key={'set' if self._key else 'unset'})"

    def close(self) -> None:
        self._http.close()

    def scrub(self, text: str) -> str:
        """``text`` with the API key (if any) replaced by ``***``."""
        if self._key and self._key in text:
            text = text.replace(self._key, "***")
        return text

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def _count_status(self, status: str) -> None:
        with self._lock:
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            wait = _parse_retry_after(retry_after)
            if wait is not None:
                return min(max(wait, 0.0), self.max_backoff_s)
        with self._lock:
            jitter = 1.0 + 0.25 * self._rng.random()
        return min(self.backoff_s * (2 ** attempt) * jitter, self.max_backoff_s)

    def chat(self, messages: list[dict[str, Any]], *, json_schema: dict[str, Any] | None = None,
             schema_name: str = "findings") -> ChatReply:
        """Send one chat request; retry transient failures.

        Args:
            messages: OpenAI-style messages (content may be a list of text / image_url parts).
            json_schema: Ask for a reply that follows this JSON schema (when the server supports it).

        Raises:
            APIError: non-retryable status, or retries exhausted. The message names the
                status and a (scrubbed, truncated) excerpt of the server's reply.
        """
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens}
        if self.seed is not None:
            body["seed"] = self.seed
        use_schema = json_schema is not None and self.structured_output
        if use_schema:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": schema_name, "schema": json_schema, "strict": True}}
        url = f"{self.base_url}/chat/completions"
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            self._count(requests=1)
            try:
                resp = self._http.post(url, json=body)
            except self._httpx.TimeoutException:
                last = "timed out"
                self._count_status("timeout")
            except self._httpx.TransportError as err:
                last = f"connection error ({type(err).__name__})"
                self._count_status("connection")
            else:
                self._count_status(str(resp.status_code))
                if resp.status_code == 200:
                    try:
                        return self._reply(resp.json())
                    except (ValueError, KeyError, IndexError, TypeError) as err:
                        last = f"malformed response body ({err.__class__.__name__}): {self._excerpt(resp.text)}"
                elif use_schema and resp.status_code in (400, 422) and "response_format" in resp.text:
                    logger.info("%s does not accept response_format json_schema; asking for plain JSON instead",
                                self.base_url)
                    self.structured_output = False
                    self._count(schema_fallbacks=1)
                    body.pop("response_format")
                    use_schema = False
                    continue
                elif resp.status_code in RETRY_STATUSES:
                    last = f"HTTP {resp.status_code}: {self._excerpt(resp.text)}"
                    retry_after = resp.headers.get("Retry-After")
                else:
                    self._count(failed=1)
                    raise APIError(f"{url} answered HTTP {resp.status_code}: {self._excerpt(resp.text)}",
                                   resp.status_code)
            if attempt < self.max_retries:
                self._count(retries=1)
                wait = self._backoff(attempt, retry_after)
                logger.debug("chat request failed (%s); retry %d/%d in %.2f s", last, attempt + 1,
                             self.max_retries, wait)
                time.sleep(wait)
        self._count(failed=1)
        raise APIError(f"{url}: giving up after {self.max_retries + 1} attempts; last error: {last}")

    def _reply(self, data: Any) -> ChatReply:
        text = data["choices"][0]["message"]["content"]
        if isinstance(text, list):  # some servers return content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        if not isinstance(text, str):
            raise TypeError("message content is not text")
        self._count(succeeded=1)
        return ChatReply(self.scrub(text), data.get("usage"))

    def _excerpt(self, text: str, limit: int = 300) -> str:
        text = self.scrub(" ".join(text.split()))
        return text if len(text) <= limit else text[:limit] + "…"

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` with at most ``concurrency`` calls in flight; order kept."""
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))


def _parse_retry_after(value: str) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def image_data_url(png_bytes: bytes) -> str:
    """A ``data:image/png;base64,...`` URL for an image part of a chat message."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")
