"""``csv``: image-text pairs from a CSV file.

Two forms are recognised from the header:

* generic, comma-separated: ``image,text`` (also ``file_name``/``filename``/``path`` for the
  image and ``prompt``/``caption`` for the text), with optional ``label``, ``patient_id`` and
  ``split`` columns copied into the rows;
* the ImageCLEFmed MEDVQA-GI ``prompt-gt.csv``: semicolon-separated ``Prompt;Filename``, with
  several prompts per image and the images in ``images/`` beside the CSV.

Rows naming the same image are merged into one dataset row: ``text`` is the first prompt,
``paraphrases`` the others — alternative captions of the same image, which training can
sample from (paraphrase augmentation). Findings are parsed from every prompt and merged
(the union of what they state: polyp size ranges and frame locations are collected, the
largest polyp count is kept); a prompt the parser cannot read stays in the text and is
reported, it does not stop the import. ``modality="auto"`` parses GI endoscopy findings for
the MEDVQA-GI form and none for the generic form.

Image paths are relative to ``image_root`` (default: the CSV's folder, then its
``images/`` subfolder).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from synthmed.data.imageio import load_image
from synthmed.data.importers.base import FormatSpec, Sample, SourceItem, safe_name
from synthmed.data.records import SPLITS
from synthmed.data.windowing import Windowing
from synthmed.errors import ConfigError, DataError, SynthmedError
from synthmed.findings import parse_text
from synthmed.utils.configs import error_text

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "file_name", "filename", "image_path", "path")
TEXT_COLUMNS = ("text", "prompt", "caption")
EXTRA_COLUMNS = ("label", "patient_id", "split")
MEDVQA_HEADER = ("prompt", "filename")
_MODALITIES = ("auto", "gi_endoscopy", "brain_mri", "generic", "none")


@dataclass(frozen=True)
class CsvOptions:
    """Options of the ``csv`` format.

    Attributes:
        image_root: Folder the image paths are relative to (default: the CSV's folder,
            then its ``images/`` subfolder).
        image_column: The image column (default: the first of :data:`IMAGE_COLUMNS`).
        text_column: The text column (default: the first of :data:`TEXT_COLUMNS`).
        delimiter: The field delimiter (default: whichever of , ; or tab the header has most).
        modality: Findings to parse from the text: gi_endoscopy, brain_mri, generic, none,
            or auto (gi_endoscopy for the MEDVQA-GI form, none otherwise).
    """

    image_root: str | None = None
    image_column: str | None = None
    text_column: str | None = None
    delimiter: str | None = None
    modality: Literal["auto", "gi_endoscopy", "brain_mri", "generic", "none"] = "auto"

    def __post_init__(self) -> None:
        if self.modality not in _MODALITIES:
            raise ConfigError(f"csv modality must be one of {', '.join(_MODALITIES)}, got {self.modality!r}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ConfigError(f"csv delimiter must be one character, got {self.delimiter!r}")


def _find_column(header: list[str], wanted: str | None, candidates: tuple[str, ...], what: str,
                 path: Path) -> int:
    lowered = [h.strip().lower() for h in header]
    for name in ([wanted] if wanted else candidates):
        if name.lower() in lowered:
            return lowered.index(name.lower())
    looked = repr(wanted) if wanted else " or ".join(candidates)
    raise DataError(f"no {what} column (looked for {looked}); the header is {header}", path, 1)


def discover(src: Path, options: CsvOptions) -> list[SourceItem]:
    """Read the CSV, check its header and rows, and group the rows by image."""
    if src.is_dir() and (src / "prompt-gt.csv").is_file():
        src = src / "prompt-gt.csv"
    if not src.is_file():
        raise DataError("expected a CSV file (or a folder with prompt-gt.csv)", src)
    try:
        with src.open("r", encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
            if not first.strip():
                raise DataError("the CSV is empty; expected a header such as image,text or Prompt;Filename",
                                src, 1)
            delimiter = options.delimiter or max(",;\t", key=first.count)
            fh.seek(0)
            rows = list(csv.reader(fh, delimiter=delimiter))
    except UnicodeDecodeError as err:
        raw = src.read_bytes()
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte 0x{raw[err.start]:02x} cannot be decoded); save the CSV as UTF-8",
                        src, line) from err
    header = rows[0]
    medvqa = tuple(h.strip().lower() for h in header) == MEDVQA_HEADER
    image_col = _find_column(header, options.image_column, IMAGE_COLUMNS, "image", src)
    text_col = _find_column(header, options.text_column, TEXT_COLUMNS, "text", src)
    lowered = [h.strip().lower() for h in header]
    extras = {name: lowered.index(name) for name in EXTRA_COLUMNS if name in lowered}
    modality = options.modality if options.modality != "auto" else ("gi_endoscopy" if medvqa else "none")
    root = Path(options.image_root) if options.image_root else src.parent
    if options.image_root and not root.is_dir():
        raise DataError("image root not found", root)

    groups: dict[str, dict[str, Any]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"row has {len(row)} fields but the header has {len(header)} (delimiter "
                            f"{delimiter!r}); quote fields that contain the delimiter", src, lineno)
        image = row[image_col].strip()
        if not image:
            raise DataError(f"empty {header[image_col]!r} field", src, lineno)
        fields = {k: row[i].strip() for k, i in extras.items() if row[i].strip()}
        if fields.get("split") not in (None, *SPLITS):
            raise DataError(f"split {fields['split']!r} is not one of {', '.join(SPLITS)}", src, lineno)
        group = groups.setdefault(image, {"line": lineno, "texts": [], "fields": fields})
        group["texts"].append((lineno, row[text_col].strip()))
    if not groups:
        raise DataError("the CSV has a header but no rows", src, 1)

    items = []
    for image, group in groups.items():
        candidates = [root / image] if options.image_root else [root / image, root / "images" / image]
        path = next((c for c in candidates if c.is_file()), candidates[0])
        name = safe_name(str(Path(image).with_suffix("")).replace("\\", "/"))
        info = {**group, "csv": src, "image": image, "modality": modality, "looked_in": candidates}
        items.append(SourceItem(path=path, names=(name,), line=group["line"], info=info))
    return items


def _merge(found: list[Any]) -> Any:
    """The union of what several findings objects of one modality state."""
    cls = type(found[0])
    merged: dict[str, Any] = {}
    for findings in found:
        for key, value in findings.model_dump(exclude={"modality"}).items():
            if value is None or value == () or value == {}:
                continue
            if isinstance(value, tuple):
                merged[key] = tuple(dict.fromkeys((*merged.get(key, ()), *value)))
            elif key == "polyp_count" and key in merged:
                merged[key] = max(merged[key], value)
            else:
                merged.setdefault(key, value)
    return cls(**merged)


def _findings(item: SourceItem) -> tuple[Any, list[str]]:
    modality, csv_path = item.info["modality"], item.info["csv"]
    if modality == "none":
        return None, []
    found, notes = [], []
    for lineno, text in item.info["texts"]:
        if not text:
            continue
        try:
            found.append(parse_text(text, modality))
        except (SynthmedError, ValueError) as err:
            notes.append(f"{csv_path}, line {lineno}: prompt not parseable as {modality} findings, kept as "
                         f"text only ({error_text(err)})")
    if not found:
        return None, notes
    try:
        return _merge(found), notes
    except ValueError as err:
        notes.append(f"{csv_path}, line {item.line}: the prompts of {item.info['image']!r} contradict each "
                     f"other ({error_text(err)}); findings taken from the first parseable prompt")
        return found[0], notes


def read(item: SourceItem, options: CsvOptions, windowing: Windowing | None = None) -> Iterator[Sample]:
    """Read one image with all its prompts."""
    csv_path, image = item.info["csv"], item.info["image"]
    if not item.path.is_file():
        looked = ", ".join(str(c) for c in item.info["looked_in"])
        raise DataError(f"row names image {image!r}, which does not exist (looked for {looked})",
                        csv_path, item.line)
    try:
        pixels = load_image(item.path)
    except DataError as err:
        raise DataError(f"row's image {image!r} is not readable: {err}", csv_path, item.line) from err
    texts = list(dict.fromkeys(t for _, t in item.info["texts"] if t))
    findings, notes = _findings(item)
    fields = {**item.info["fields"], "text": texts[0] if texts else None, "paraphrases": texts[1:],
              "findings": findings, "source": "real"}
    yield Sample(name=item.names[0], image=pixels, fields=fields, notes=notes)  # type: ignore[index]


FORMAT = FormatSpec(
    name="csv",
    description="image-text pairs: image,text CSV or ImageCLEFmed MEDVQA-GI prompt-gt.csv (Prompt;Filename)",
    options_type=CsvOptions,
    discover=discover,
    read=read,
)
