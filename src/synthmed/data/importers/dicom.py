"""``dicom``: a folder of DICOM files (searched recursively), one image per file or frame.

What is read, and nothing else:

* the pixel data, mapped to modality values with Rescale Slope / Intercept (e.g. CT in
  Hounsfield units); multi-frame files give one image per frame;
* Pixel Spacing -> ``spacing_mm`` (left empty when the pixels are not square);
* Patient ID -> ``patient_id``, **pseudonymised** by default: ``"dcm-"`` + the first 12
  hex digits of SHA-256(Patient ID), or of HMAC-SHA-256 keyed with ``id_salt`` when one
  is given. A plain hash of a short id can be reversed by hashing candidate ids, so pass a
  secret salt when the pseudonyms leave your site. ``keep_patient_ids=True`` keeps the
  real id (it is PHI);
* Window Center / Width, only with ``file_window=True``: each image is windowed with its
  own window (the first one if several), falling back to the import's windowing, else raw;
* Photometric Interpretation MONOCHROME1 -> windowed images are inverted so white is high.

No other tag is copied into the dataset: not the name, dates, UIDs, institution, or the
file's path (output names are ``dcm_`` + a hash of the path relative to the source).
By default (no windowing) the modality values are stored losslessly as 16-bit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.data.importers.base import FormatSpec, Sample, SourceItem, list_files
from synthmed.data.windowing import Windowing
from synthmed.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True)
class DicomOptions:
    """Options of the ``dicom`` format.

    Attributes:
        keep_patient_ids: Store the real Patient ID instead of its pseudonym (PHI!).
        id_salt: Secret key for the pseudonyms (HMAC-SHA-256); None uses plain SHA-256.
        file_window: Window each image with its own Window Center / Width.
    """

    keep_patient_ids: bool = False
    id_salt: str | None = None
    file_window: bool = False

    def __post_init__(self) -> None:
        if self.keep_patient_ids and self.id_salt:
            raise ConfigError("id_salt has no effect with keep_patient_ids; pass one or the other")


def pseudonymise(patient_id: str, salt: str | None = None) -> str:
    """``"dcm-"`` + 12 hex digits of SHA-256(``patient_id``), or of HMAC-SHA-256 with ``salt``."""
    data = patient_id.encode("utf-8")
    digest = hmac.new(salt.encode("utf-8"), data, hashlib.sha256) if salt else hashlib.sha256(data)
    return "dcm-" + digest.hexdigest()[:12]


def _has_dicm_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def discover(src: Path, options: DicomOptions) -> list[SourceItem]:
    """List ``.dcm``/``.dicom`` files (and extension-less files with a DICOM preamble) under ``src``."""
    if src.is_file():
        files, root = [src], src.parent
    else:
        root = src
        files = [p for p in list_files(src, [""])
                 if p.suffix.lower() in _SUFFIXES or (not p.suffix and _has_dicm_preamble(p))]
    if not files:
        raise DataError("no DICOM files (.dcm, .dicom, or with a DICM preamble) found", src)
    items = []
    for p in files:
        rel = p.relative_to(root).as_posix()
        # The name hides the path, which often carries the patient's name.
        name = "dcm_" + hashlib.sha256(rel.encode("utf-8")).hexdigest()[:16] + ".png"
        items.append(SourceItem(path=p, names=(name,)))
    return items


def _spacing(ds: Any) -> tuple[float | None, str | None]:
    value = ds.get("PixelSpacing")
    if not value or len(value) < 2:
        return None, None
    row, col = float(value[0]), float(value[1])
    if row <= 0 or col <= 0:
        return None, None
    if not math.isclose(row, col, rel_tol=1e-3):
        return None, f"non-square pixels ({row:g} x {col:g} mm); spacing_mm left empty"
    return row, None


def _first(value: Any) -> float:
    """A number from a DICOM value that may be multi-valued (then its first value)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return float(value)
    return float(value[0])


def _file_window(ds: Any) -> Windowing | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c, w = _first(center), _first(width)
    except (TypeError, ValueError, IndexError):
        return None
    return Windowing("window", center=c, width=w) if w > 0 else None


def _modality_values(ds: Any, pixels: np.ndarray) -> np.ndarray:
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == 0:
        return pixels
    if slope.is_integer() and intercept.is_integer():
        return pixels.astype(np.int32) * int(slope) + int(intercept)
    return pixels.astype(np.float64) * slope + intercept


def read(item: SourceItem, options: DicomOptions, windowing: Windowing | None = None) -> Iterator[Sample]:
    """Read one DICOM file: one sample per frame, with the pseudonymised patient id."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(item.path)
        pixels = np.asarray(ds.pixel_array)
    except (InvalidDicomError, AttributeError, ValueError, OSError, RuntimeError, KeyError,
            NotImplementedError, TypeError) as err:
        raise DataError(f"not a readable DICOM image ({type(err).__name__}: {err})", item.path) from err
    samples_per_pixel = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        pixels = pixels[None]
    if pixels.ndim != (4 if samples_per_pixel > 1 else 3):
        raise DataError(f"unexpected pixel array shape {pixels.shape} for {frames} frame(s), "
                        f"{samples_per_pixel} sample(s) per pixel", item.path)
    values = pixels if samples_per_pixel > 1 else _modality_values(ds, pixels)
    raw_id = str(ds.get("PatientID", "") or "").strip()
    patient_id = None
    if raw_id:
        patient_id = raw_id if options.keep_patient_ids else pseudonymise(raw_id, options.id_salt)
    spacing, note = _spacing(ds)
    window = _file_window(ds) if options.file_window else None
    invert = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    base = item.names[0].removesuffix(".png")  # type: ignore[index]
    for i, frame in enumerate(values):
        yield Sample(
            name=item.names[0] if frames == 1 else f"{base}_f{i:04d}.png",  # type: ignore[index]
            image=frame,
            spacing_mm=spacing,
            fields={"patient_id": patient_id, "source": "real"},
            windowing=window,
            invert=invert,
            notes=[f"{item.path}: {note}"] if note and i == 0 else [],
        )


FORMAT = FormatSpec(
    name="dicom",
    description="a folder of DICOM files (pseudonymised patient ids, modality values, pixel spacing)",
    options_type=DicomOptions,
    discover=discover,
    read=read,
)
