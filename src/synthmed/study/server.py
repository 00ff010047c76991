"""``synthmed study serve``: the reader web app (FastAPI on uvicorn).

Every route carries a reader's token; an unknown token gets 403. The server reads the study's
settings and images and writes answers; it never opens the key, so no response can contain the
truth or the source datasets' paths and file names. Image ids are looked up in the reader's own
list (never joined into a path as given). Request bodies are limited to :data:`MAX_BODY_BYTES`.
"""

from __future__ import annotations

import logging
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from synthmed.errors import ConfigError
from synthmed.study.layout import CONFIDENCE_LEVELS, REALISM_LEVELS, image_path, read_settings
from synthmed.study.store import AlreadyAnswered, AnswerStore, Reader

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"}


class AnswerIn(BaseModel):
    """The body of ``POST /api/{token}/answer``."""

    model_config = ConfigDict(extra="forbid")

    item: str = Field(max_length=64)
    confidence: StrictInt = Field(ge=1, le=CONFIDENCE_LEVELS, description="1 certainly real ... 6 certainly synthetic")
    realism: StrictInt | None = Field(default=None, ge=1, le=REALISM_LEVELS)
    tumor_present: StrictBool | None = None
    hemisphere: Literal["left", "right"] | None = None
    seconds: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=86400)


def _require_fastapi() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ConfigError("the reader study's server needs FastAPI and uvicorn: pip install 'synthmed[study]'") from err


def _static(name: str) -> str:
    return resources.files("synthmed.study").joinpath("static", name).read_text(encoding="utf-8")


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app reads any of it."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        body, more = b"", True
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(send)
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await self._refuse(send)
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> dict:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = b'{"detail": "request body too large (at most %d bytes)"}' % self.limit
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _required(settings_questions: list[str], answer: AnswerIn) -> list[dict[str, str]]:
    """The fields this study asks for that ``answer`` leaves out (or sets where it must not)."""
    errors = []
    if "realism" in settings_questions and answer.realism is None:
        errors.append({"field": "realism", "message": f"required: a realism score 1-{REALISM_LEVELS}"})
    if "realism" not in settings_questions and answer.realism is not None:
        errors.append({"field": "realism", "message": "this study does not ask for realism"})
    if "findings" in settings_questions:
        if answer.tumor_present is None:
            errors.append({"field": "tumor_present", "message": "required: true or false"})
        elif answer.tumor_present and answer.hemisphere is None:
            errors.append({"field": "hemisphere", "message": "required when tumor_present is true: left or right"})
        elif not answer.tumor_present and answer.hemisphere is not None:
            errors.append({"field": "hemisphere", "message": "must be null when tumor_present is false"})
    elif answer.tumor_present is not None or answer.hemisphere is not None:
        field = "tumor_present" if answer.tumor_present is not None else "hemisphere"
        errors.append({"field": field, "message": "this study does not ask about findings"})
    return errors


def create_app(study: str | Path) -> Any:
    """The reader app of the study folder ``study`` (an ASGI application)."""
    _require_fastapi()
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    study = Path(study)
    settings = read_settings(study)
    store = AnswerStore(study)
    readers: dict[str, Reader] = {r.token: r for r in store.readers()}
    fmt = settings.image_format
    page, script, style = _static("reader.html"), _static("reader.js"), _static("reader.css")

    app = FastAPI(title="synthmed reader study", docs_url=None, redoc_url=None, openapi_url=None)

    def reader_of(token: str) -> Reader:
        reader = readers.get(token)
        if reader is None:  # a reader added by another `study serve` since this one started
            readers.update({r.token: r for r in store.readers()})
            reader = readers.get(token)
        if reader is None:
            raise HTTPException(403, "unknown reader link")
        return reader

    def offered(reader: Reader, item: str) -> None:
        if item not in reader.order:
            raise HTTPException(404, "no such image")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        errors = []
        for e in err.errors():
            loc = tuple(e.get("loc", ()))
            field = ".".join(str(x) for x in loc[1:]) if loc[:1] == ("body",) and e.get("type") != "json_invalid" \
                else ""
            errors.append({"field": field or "body", "message": e.get("msg", "invalid")})
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"detail": f"invalid answer: {text}", "errors": errors}, status_code=422)

    @app.get("/r/{token}", response_class=HTMLResponse)
    def reader_page(token: str) -> HTMLResponse:
        reader_of(token)
        return HTMLResponse(page.replace("{{token}}", token).replace("{{title}}", escape(settings.title)))

    @app.get("/r/{token}/reader.js")
    def reader_script(token: str) -> Response:
        reader_of(token)
        return Response(script, media_type="text/javascript")

    @app.get("/r/{token}/reader.css")
    def reader_style(token: str) -> Response:
        reader_of(token)
        return Response(style, media_type="text/css")

    @app.get("/api/{token}/study")
    def study_info(token: str) -> dict[str, Any]:
        reader = reader_of(token)
        return {"title": settings.title, "reader": reader.name, "questions": settings.questions,
                "total": len(reader.order), "confidence_levels": CONFIDENCE_LEVELS, "realism_levels": REALISM_LEVELS,
                "image_format": fmt.model_dump()}

    @app.get("/api/{token}/next")
    def next_item(token: str) -> dict[str, Any]:
        reader = reader_of(token)
        answered = store.answered_items(token)
        index = next((i for i, item in enumerate(reader.order) if item not in answered), None)
        if index is None:
            return {"done": True, "total": len(reader.order)}
        item = reader.order[index]
        return {"item": item, "image": f"/api/{token}/image/{item}", "pixels": f"/api/{token}/pixels/{item}",
                "index": index, "total": len(reader.order)}

    @app.get("/api/{token}/image/{item}")
    def image(token: str, item: str) -> Response:
        offered(reader_of(token), item)
        return Response(image_path(study, item).read_bytes(), media_type="image/png")

    @app.get("/api/{token}/pixels/{item}")
    def pixels(token: str, item: str) -> Response:
        """Raw samples, row-major, channels last, little-endian (``image_format`` says the shape)."""
        offered(reader_of(token), item)
        from synthmed.data.imageio import load_image

        arr = load_image(image_path(study, item))
        return Response(arr.astype("<u2" if fmt.bits == 16 else np.uint8).tobytes(),
                        media_type="application/octet-stream")

    @app.post("/api/{token}/answer")
    def answer(token: str, body: AnswerIn) -> Any:
        reader = reader_of(token)
        missing = _required(settings.questions, body)
        if missing:
            text = "; ".join(f"{e['field']}: {e['message']}" for e in missing)
            return JSONResponse({"detail": f"invalid answer: {text}", "errors": missing}, status_code=422)
        if body.item not in reader.order:
            raise HTTPException(409, "this image was not offered to this reader")
        answered = store.answered_items(token)
        if body.item in answered:
            raise HTTPException(409, "this image is answered already")
        current = next(item for item in reader.order if item not in answered)
        if body.item != current:
            raise HTTPException(409, "not the image offered now: answer the image GET next returns")
        try:
            store.add_answer(token, body.item, body.model_dump(exclude={"item"}))
        except AlreadyAnswered:
            raise HTTPException(409, "this image is answered already") from None
        return {"stored": True, "index": reader.order.index(body.item) + 1, "total": len(reader.order)}

    return app


def reader_urls(readers: list[Reader], host: str, port: int) -> list[tuple[str, str]]:
    """(reader name, link) for each reader."""
    shown = f"[{host}]" if ":" in host else host
    return [(r.name, f"http://{shown}:{port}/r/{r.token}") for r in readers]


def prepare_readers(study: str | Path, names: list[str] | None = None, n_readers: int | None = None) -> list[Reader]:
    """The study's readers after adding ``names`` (or reader-1..reader-K); with neither, the existing ones
    (or one new reader when there are none)."""
    if names and n_readers:
        raise ConfigError("give --readers or --n-readers, not both")
    settings = read_settings(study)
    store = AnswerStore(study)
    existing = store.readers()
    if names:
        store.add_readers(names, settings)
    elif n_readers:
        store.add_readers([f"reader-{i + 1}" for i in range(n_readers)], settings)
    elif not existing:
        store.add_readers(["reader-1"], settings)
    return store.readers()


def serve(study: str | Path, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Run the reader app until interrupted."""
    _require_fastapi()
    import uvicorn

    if host not in LOOPBACK:
        logger.warning("serving on %s: anyone who can reach this address and has a reader's link can answer; "
                       "bind to 127.0.0.1 unless readers connect from other machines", host)
    uvicorn.run(limited_app(study), host=host, port=port, log_level=log_level)


def limited_app(study: str | Path) -> Any:
    """The reader app with the request-body limit, as ``serve`` runs it."""
    return _BodyLimit(create_app(study), MAX_BODY_BYTES)
