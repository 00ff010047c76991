"""Pull a JSON object out of a language model's reply.

Models wrap JSON in code fences, add a sentence before or after it, or stop half-way.
:func:`extract_json_object` finds the first complete top-level object and says precisely
why when there is none; it never guesses missing content.
"""

from __future__ import annotations

import json
from typing import Any


class ReplyFormatError(ValueError):
    """The reply holds no complete JSON object (or not of the expected form)."""


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (code fences and surrounding prose are skipped).

    Raises:
        ReplyFormatError: no ``{`` in the text, or no complete, valid object starting at any ``{``.
    """
    if not isinstance(text, str) or "{" not in text:
        raise ReplyFormatError("the reply contains no JSON object")
    decoder = json.JSONDecoder()
    first_error: str | None = None
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            first_error = first_error or f"{err.msg} at character {err.pos}"
        else:
            if isinstance(obj, dict):
                return obj
        start = text.find("{", start + 1)
    raise ReplyFormatError(f"the reply's JSON is malformed or incomplete ({first_error})")
