"""The types every importer shares: work items, samples, the report and the format spec.

An importer is two plain functions over a typed options dataclass:

* ``discover(src, options) -> list[SourceItem]`` lists the work (one item per input file,
  or per CSV image) and checks the *structure* of the input (the source exists, the
  layout is the expected one, the CSV has its columns). Structural problems raise
  :class:`~synthmed.errors.DataError` at once.
* ``read(item, options, windowing) -> Iterator[Sample]`` reads one item into raw samples (one per
  image; a NIfTI volume gives one per slice). A corrupt or inconsistent file raises
  :class:`~synthmed.errors.DataError` naming it; the driver then skips it and reports it,
  or stops when the import is strict.

The driver (:func:`synthmed.data.importers.import_dataset`) does the rest in one place for
every format: windowing, bit depth, padding and resizing, resumable writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.data.dataset import safe_image_name as safe_name  # noqa: F401  (re-exported for importers)
from synthmed.data.windowing import Windowing

#: File extensions read as 2-D images by the folder and CSV importers.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})


@dataclass(frozen=True)
class SourceItem:
    """One unit of work: an input file (or a CSV image with its rows).

    Attributes:
        path: The input file.
        names: The output image names this item produces, when known before reading it,
            so that a re-run can skip it without opening it. ``None`` when only reading
            tells (a NIfTI volume's slices).
        line: The 1-based line of the CSV that names this item, if any.
        info: Format-specific facts found while discovering (class folder, split, rows).
    """

    path: Path
    names: tuple[str, ...] | None = None
    line: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One image read from a source, before windowing, bit depth and resizing.

    Attributes:
        name: Output file name inside ``images/`` (a plain name ending in ``.png``).
        image: Raw values, (H, W) of any numeric dtype or (H, W, 3) uint8 colour; or, when
            ``window_record`` is set, values the importer already mapped (below).
        mask: Optional (H, W) lesion mask (any non-zero value is lesion).
        spacing_mm: In-plane pixel spacing in mm (square pixels), if known.
        fields: The other :class:`~synthmed.data.records.DatasetRecord` fields (label,
            patient_id, split, findings, text, paraphrases, ...).
        windowing: A window for this image only, overriding the import's (a DICOM file's
            own Window Center/Width).
        window_record: Set when the importer already mapped ``image`` itself: then it is
            float32 in [0, 1] after a window, or the stored uint8/uint16 values (a NIfTI
            volume is mapped as a whole so that its slices share one mapping).
        invert: The source displays low values as white (DICOM MONOCHROME1): windowed
            images are inverted so that white is high signal, and the row records it.
        notes: Non-fatal remarks for the report (an unparseable prompt kept as text only).
    """

    name: str
    image: np.ndarray
    mask: np.ndarray | None = None
    spacing_mm: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    windowing: Windowing | None = None
    window_record: dict[str, Any] | None = None
    invert: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Filtered:
    """Yielded by a reader for images it leaves out on purpose (counted, not written)."""

    count: int = 1


@dataclass(frozen=True)
class SkippedItem:
    """An input that was not imported, and why."""

    source: str
    reason: str
    line: int | None = None


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        format: The importer used.
        out: The dataset directory written.
        written: Rows (images) written by this run.
        already_present: Images skipped because an earlier run wrote them.
        filtered: Images left out on purpose (e.g. empty NIfTI slices with ``slices="nonempty"``).
        skipped: Inputs that could not be imported, with the reason (non-strict imports only).
        warnings: Non-fatal remarks (an unparseable prompt kept as text only, ...).
    """

    format: str
    out: str
    written: int = 0
    already_present: int = 0
    filtered: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a terminal."""
        parts = [f"{self.written} written", f"{self.already_present} already present"]
        if self.filtered:
            parts.append(f"{self.filtered} left out by filters")
        parts.append(f"{len(self.skipped)} skipped")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warnings")
        return f"import {self.format} -> {self.out}: " + ", ".join(parts)


@dataclass(frozen=True)
class FormatSpec:
    """A registered import format.

    Attributes:
        name: The format name users pass (``--format``).
        description: One line for help texts.
        options_type: The dataclass of the format's own options.
        discover: Lists and structurally checks the inputs.
        read: Reads one item into samples (and :class:`Filtered` markers). It gets the
            import's windowing too, for formats that window several images as one (a
            NIfTI volume); the others leave windowing to the driver.
    """

    name: str
    description: str
    options_type: type
    discover: Callable[[Path, Any], list[SourceItem]]
    read: Callable[[SourceItem, Any, Windowing | None], Iterator[Sample | Filtered]]


def stem_of(path: Path) -> str:
    """The file name without its extension; ``x.nii.gz`` -> ``x``."""
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def list_files(root: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under ``root`` (recursive, sorted, hidden ones excluded) whose name ends in a suffix."""
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.name.lower().endswith(wanted)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
