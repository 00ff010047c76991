"""Load the components of a pretrained diffusers pipeline one by one, by the classes its index names.

``model_index.json`` maps each component to ``[library, class]``; loading each with
``Class.from_pretrained(base, subfolder=name)`` is what ``DiffusionPipeline.from_pretrained``
does, without building the pipeline (a trainer needs the parts, in its own dtypes).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from synthmed.errors import ConfigError


def check_base(base: str, flag: str = "--base") -> None:
    """Refuse a base that is neither an existing pipeline folder nor shaped like a hub id.

    Raises:
        ConfigError: naming the flag and what is wrong.
    """
    p = Path(base)
    if p.exists():
        if not (p / "model_index.json").is_file():
            raise ConfigError(f"{flag} {base!r}: folder has no model_index.json; is it a diffusers pipeline folder?")
        return
    if base.startswith((".", "/", "~")) or base.count("/") != 1:
        raise ConfigError(f"{flag} {base!r}: no such folder (and not a hub id of the form org/name)")


def model_index(base: str) -> dict:
    """The parsed ``model_index.json`` of a local folder or hub repository."""
    p = Path(base)
    try:
        if p.is_dir():
            return json.loads((p / "model_index.json").read_text())
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(base, "model_index.json")).read_text())
    except Exception as err:  # noqa: BLE001 - any failure is the same user error
        raise ConfigError(f"{base!r}: cannot read model_index.json ({err})") from err


def load_component(base: str, name: str, index: dict | None = None, **kwargs):
    """Component ``name`` (e.g. ``"unet"``, ``"text_encoder_2"``) of the pipeline at ``base``.

    Raises:
        ConfigError: the pipeline has no such component or it cannot be loaded.
    """
    index = index if index is not None else model_index(base)
    entry = index.get(name)
    if not entry or entry[0] is None:
        raise ConfigError(f"{base!r}: the pipeline has no {name!r} component (has: "
                          f"{sorted(k for k, v in index.items() if isinstance(v, list) and v[0])})")
    library, cls_name = entry
    cls = getattr(importlib.import_module(library), cls_name)
    try:
        return cls.from_pretrained(base, subfolder=name, **kwargs)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"{base!r}: cannot load component {name!r} ({cls_name}): {err}") from err
