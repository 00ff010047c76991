"""A real chat-completions server on 127.0.0.1, for tests and benchmarks of the ``api:`` paths.

It speaks the OpenAI ``POST /v1/chat/completions`` protocol over HTTP. What it answers is
decided by a ``responder(request) -> Reply`` function, so a test can inject faults (429
with ``Retry-After``, 500, a reply slower than the client's timeout, a body that is not
JSON, a reply of the wrong schema) and good replies, and afterwards inspect every request
it received (headers included).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class Reply:
    """What the server sends back.

    Attributes:
        content: The assistant message text (ignored when ``body`` is set).
        status: HTTP status.
        delay_s: Seconds to wait before answering (to trip client timeouts).
        headers: Extra response headers (e.g. ``{"Retry-After": "0"}``).
        body: A raw body to send instead of a well-formed completion (e.g. malformed JSON).
    """

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass
class Request:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def text(self) -> str:
        """All text parts of all messages, concatenated."""
        parts = []
        for m in self.body.get("messages", []):
            c = m.get("content")
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts += [p.get("text", "") for p in c if p.get("type") == "text"]
        return "\n".join(parts)

    def images(self) -> list[np.ndarray]:
        """The images sent as data URLs, decoded to arrays."""
        from PIL import Image

        out = []
        for m in self.body.get("messages", []):
            c = m.get("content")
            if isinstance(c, list):
                for p in c:
                    if p.get("type") == "image_url":
                        url = p["image_url"]["url"]
                        data = base64.b64decode(url.split(",", 1)[1])
                        out.append(np.asarray(Image.open(io.BytesIO(data))))
        return out


def completion(content: str, model: str = "test") -> str:
    """A well-formed chat-completion response body."""
    return json.dumps({
        "id": "cmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })


class ChatServer:
    """A threaded loopback server; use as a context manager.

    Example:
        >>> with ChatServer(lambda req: Reply('{"tumor_present": false}')) as srv:   # doctest: +SKIP
        ...     client = ChatClient("m", base_url=srv.base_url)
    """

    def __init__(self, responder: Callable[[Request], Reply]):
        self.responder = responder
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                req = Request(self.path, dict(self.headers.items()), body)
                with server._lock:
                    server.requests.append(req)
                if not self.path.endswith("/chat/completions"):
                    reply = Reply(status=404, body='{"error": {"message": "not found"}}')
                else:
                    reply = server.responder(req)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = (reply.body if reply.body is not None else
                        completion(reply.content, body.get("model", "test")) if reply.status == 200 else
                        json.dumps({"error": {"message": f"status {reply.status}"}})).encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        return Handler


def image_key(rgb: np.ndarray) -> str:
    """A key of an image as the server sees it (decoded RGB pixels), for answer tables."""
    from synthmed.llm.cache import array_digest

    return array_digest(np.asarray(rgb, dtype=np.uint8))


def findings_table(root: str, captioner: str = "mask") -> dict[str, str]:
    """image key -> JSON findings reply, from running a local captioner over a dataset directory.

    Lets the loopback server answer like a VLM that agrees with ``captioner`` (e.g. the mask
    captioner on the phantom), so the ``api:`` path can be scored end to end.
    """
    from synthmed.caption import CaptionInput, get_captioner
    from synthmed.data import ImageDataset
    from synthmed.viz import to_rgb8

    ds = ImageDataset(root)
    cap = get_captioner(captioner)
    table: dict[str, str] = {}
    for rec in ds.records:
        img = ds.image(rec)
        res = cap.caption([CaptionInput(rec.file_name, img, ds.mask(rec), rec.spacing_mm)])[0]
        if res.findings is not None:
            data = {k: v for k, v in res.findings.to_dict().items() if k != "modality"}
            table[image_key(to_rgb8(img))] = json.dumps(data)
    return table
