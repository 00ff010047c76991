"""The import formats by name.

Each format lives in its own module exposing ``FORMAT`` (a
:class:`~synthmed.data.importers.base.FormatSpec`). Modules are imported on first use, so
``synthmed data import --format folder`` never loads pydicom, nibabel or h5py.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from synthmed.data.importers.base import FormatSpec
from synthmed.errors import ConfigError

_FORMATS: dict[str, str] = {
    "folder": "synthmed.data.importers.folder",
    "figshare": "synthmed.data.importers.figshare",
    "dicom": "synthmed.data.importers.dicom",
    "nifti": "synthmed.data.importers.nifti",
    "csv": "synthmed.data.importers.csv_pairs",
}


def available_formats() -> list[str]:
    """The names accepted by :func:`get_format`."""
    return list(_FORMATS)


def get_format(name: str) -> FormatSpec:
    """The import format called ``name``.

    Raises:
        ConfigError: ``name`` is not a known format (the message lists the valid names).
    """
    if name not in _FORMATS:
        raise ConfigError(f"unknown import format {name!r}; valid formats: {', '.join(_FORMATS)}")
    spec: FormatSpec = importlib.import_module(_FORMATS[name]).FORMAT
    return spec


def build_options(spec: FormatSpec, options: dict[str, Any]) -> Any:
    """Build the format's options dataclass from keyword options.

    Raises:
        ConfigError: an option does not belong to this format (the message lists those that
            do), or a value is invalid.
    """
    valid = [f.name for f in dataclasses.fields(spec.options_type)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"option(s) {', '.join(unknown)} do not apply to format {spec.name!r}; "
            f"its options are: {', '.join(valid) or '(none)'}"
        )
    return spec.options_type(**options)
