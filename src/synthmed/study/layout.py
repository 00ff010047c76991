"""What a reader-study folder holds and how it is read.

``STUDY/study.json`` holds the settings and the opaque image ids (no truth); ``STUDY/key.json``
holds the truth (which id is real, its source row, its findings) and is read only when scoring;
``STUDY/images/<id>.png`` are the images, re-encoded without metadata; ``STUDY/answers.sqlite``
holds the readers (their tokens and orders) and their answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthmed.errors import DataError

SETTINGS_FILE = "study.json"
KEY_FILE = "key.json"
IMAGES_DIR = "images"
ANSWERS_FILE = "answers.sqlite"
RESULTS_FILE = "results.json"

Question = Literal["realism", "findings"]
QUESTIONS: tuple[str, ...] = Question.__args__  # type: ignore[attr-defined]
#: The real-or-synthetic confidence scale: 1 "certainly real" ... 6 "certainly synthetic".
CONFIDENCE_LEVELS = 6
#: Confidence ratings at or above this call the image synthetic.
CALLS_SYNTHETIC_FROM = 4
REALISM_LEVELS = 5


class ImageFormat(BaseModel):
    """The pixel format every image of a study shares (a difference would give the origin away)."""

    model_config = ConfigDict(extra="forbid")

    width: int
    height: int
    channels: Literal[1, 3]
    bits: Literal[8, 16]


class StudySettings(BaseModel):
    """``study.json``: what the server may know. Nothing here reveals an image's origin."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    title: str = "Real or synthetic?"
    seed: int
    questions: list[Question]
    image_format: ImageFormat
    items: list[str] = Field(min_length=1)


class KeyEntry(BaseModel):
    """The truth about one study image."""

    model_config = ConfigDict(extra="forbid")

    origin: Literal["real", "synthetic"]
    dataset: str
    file_name: str
    findings: dict[str, Any] | None = None


class StudyKey(BaseModel):
    """``key.json``: the truth, for scoring only (never served)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    items: dict[str, KeyEntry]


def _read_model(path: Path, cls: type[BaseModel], what: str) -> Any:
    from synthmed.utils.configs import format_validation_error

    if not path.is_file():
        raise DataError(f"no {path.name}: is this a study folder written by `synthmed study create`?", path)
    try:
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, ValidationError):
            raise DataError(f"not a valid {what}: {format_validation_error(err)}", path) from err
        raise DataError(f"cannot read the {what} ({err})", path) from err


def read_settings(study: str | Path) -> StudySettings:
    """The settings of the study folder ``study``.

    Raises:
        DataError: naming ``study.json`` when it is missing or invalid.
    """
    return _read_model(Path(study) / SETTINGS_FILE, StudySettings, "study settings file")


def read_key(study: str | Path) -> StudyKey:
    """The answer key of the study folder ``study``.

    Raises:
        DataError: naming ``key.json`` when it is missing, invalid, or does not cover every item.
    """
    study = Path(study)
    key = _read_model(study / KEY_FILE, StudyKey, "study key")
    missing = set(read_settings(study).items) - set(key.items)
    if missing:
        raise DataError(f"the key has no entry for {len(missing)} of the study's images "
                        f"(e.g. {sorted(missing)[0]}): it belongs to another study", study / KEY_FILE)
    return key


def image_path(study: str | Path, item: str) -> Path:
    """Where the image of ``item`` is stored (``item`` must be one of the study's ids)."""
    return Path(study) / IMAGES_DIR / f"{item}.png"
