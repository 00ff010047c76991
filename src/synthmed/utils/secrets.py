"""Secrets (API keys, tokens, passwords, the DICOM pseudonym salt) never reach a file synthmed writes.

Every JSON and YAML record synthmed writes goes through :func:`redact_secrets`: a field whose
name says it holds a secret (``api_key``, ``hf_token``, ``password``, ``id_salt`` ...) and any
value that looks like a provider key (``sk-...``, ``hf_...``) is replaced by ``<redacted>``.
A placeholder such as textual inversion's ``token: <glioma>`` or ``max_new_tokens`` is not
a secret and is kept. Where a secret must still change a digest (a new salt gives new
pseudonyms, so the stage must rerun), :func:`fingerprint_secrets` replaces it with a slow,
salted hash (scrypt) instead, which cannot be reversed by trying likely values quickly.

Prefer environment variables for secrets (``SYNTHMED_API_KEY``, ``OPENAI_API_KEY``,
``SYNTHMED_ID_SALT``): they are read when needed and never recorded.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

REDACTED = "<redacted>"

_SECRET_NAME = re.compile(
    r"(^|_)(api_?key|secret|password|passwd|passphrase|credentials?|salt|authorization|bearer)(_|$)"
    r"|(^|_)(access|auth|hf|api|bearer|refresh|session|private|github|openai)_?(token|key)(_|$)"
    r"|_key$"
)
_SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,})\b")


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (``api_key``, ``HF_TOKEN``, ``id-salt`` ...)."""
    return bool(_SECRET_NAME.search(name.lower().replace("-", "_")))


def _replace(value: Any, secret: Any) -> Any:
    if isinstance(value, dict):
        return {k: (secret(v) if isinstance(k, str) and is_secret_name(k) and v not in (None, "")
                    else _replace(v, secret)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_replace(v, secret) for v in value)
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def redact_secrets(value: Any) -> Any:
    """A copy of ``value`` (nested dicts, lists, strings) with every secret replaced by ``<redacted>``."""
    return _replace(value, lambda _: REDACTED)


def fingerprint_secrets(value: Any) -> Any:
    """A copy of ``value`` with every secret field replaced by a slow salted hash of it (for digests)."""

    def fingerprint(secret: Any) -> str:
        digest = hashlib.scrypt(str(secret).encode(), salt=b"synthmed stage key", n=2**14, r=8, p=1, dklen=16)
        return "scrypt:" + digest.hex()

    return _replace(value, fingerprint)
