"""Typed configs from YAML, flags or Python, with errors that name the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from synthmed.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


def format_validation_error(err: ValidationError, *, subject: str = "config", hide: tuple[str, ...] = ()) -> str:
    """One clause per bad field, ``field 'a.b': message (got value)``, without pydantic's URL footer.

    Args:
        err: The validation error.
        subject: The name used when the error is about the whole object rather than a field.
        hide: Prefixes of location parts to leave out (the tags pydantic adds for union members).
    """
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith(hide)) or subject
        got = e.get("input")
        shown = ""
        if got is not None and not isinstance(got, dict | list):
            text = repr(got)
            shown = f" (got {text if len(text) <= 60 else text[:57] + '...'})"
        parts.append(f"field '{loc}': {e['msg'].removeprefix('Value error, ')}{shown}")
    return "; ".join(parts)


def error_text(err: Exception, **options: Any) -> str:
    """:func:`format_validation_error` for a validation error, ``str(err)`` for any other."""
    return format_validation_error(err, **options) if isinstance(err, ValidationError) else str(err)


def deep_merge(base: dict[str, Any], override: dict[str, Any], *, skip_none: bool = True) -> dict[str, Any]:
    """``base`` updated with ``override``, nested dicts merged key by key.

    With ``skip_none`` (flags left unset), None values in ``override`` do not override.
    """
    out = dict(base)
    for key, value in override.items():
        if value is None and skip_none:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, skip_none=skip_none)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file.

    Raises:
        ConfigError: the file is missing, not valid YAML, or not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                data: dict[str, Any] | None = None, what: str | None = None) -> T:
    """Build a ``cls`` from a YAML file (or the mapping ``data``) updated with ``overrides`` (flags).

    Args:
        what: The config's name in errors (default: the class name).

    Raises:
        ConfigError: naming the file (or ``what``, or "options") and each invalid field.
    """
    raw = read_yaml(path) if path is not None else dict(data or {})
    raw = deep_merge(raw, overrides or {})
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        where = str(path) if path is not None else (what or "options")
        raise ConfigError(f"{where}: invalid {what or cls.__name__}: {format_validation_error(err)}") from err


def dump_yaml(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML (what produced an artifact, saved beside it), secrets redacted."""
    import yaml

    from synthmed.utils.secrets import redact_secrets

    Path(path).write_text(yaml.safe_dump(redact_secrets(config.model_dump(mode="json")), sort_keys=False),
                          encoding="utf-8")
