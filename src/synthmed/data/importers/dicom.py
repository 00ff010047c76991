"""``dicom``: a folder of DICOM files (searched recursively), one image per file or frame.

What is read, and nothing else:

* the pixel data, mapped to modality values by the Modality LUT module (a Modality LUT
  Sequence, else Rescale Slope / Intercept, e.g. CT in Hounsfield units; pydicom's
  ``apply_modality_lut``); multi-frame files give one image per frame;
* Pixel Spacing -> ``spacing_mm`` (left empty when the pixels are not square);
* Patient ID -> ``patient_id``, **pseudonymised** by default: ``"dcm-"`` + the first 12
  hex digits of SHA-256(Patient ID), or of HMAC-SHA-256 keyed with ``id_salt`` when one
  is given. A plain hash of a short id can be reversed by hashing candidate ids, so pass a
  secret salt when the pseudonyms leave your site. ``keep_patient_ids=True`` keeps the
  real id (it is PHI);
* the VOI LUT module, only with ``file_window=True``: each image is shown as the file says,
  through its VOI LUT Sequence (the first one), else its Window Center / Width (the first
  pair) with its VOI LUT Function (LINEAR, LINEAR_EXACT or SIGMOID, PS3.3 C.11.2); a file
  with neither falls back to the import's windowing, else raw;
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
from struct import error as struct_error
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


_VOI_FUNCTIONS = {"LINEAR": "linear", "LINEAR_EXACT": "linear_exact", "SIGMOID": "sigmoid"}


def _file_window(ds: Any, path: Path) -> Windowing | None:
    """The file's Window Center / Width (first pair) with its VOI LUT Function, if it has one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c, w = _first(center), _first(width)
    except (TypeError, ValueError, IndexError):
        return None
    name = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if name not in _VOI_FUNCTIONS:
        raise DataError(f"VOI LUT Function {name!r} is not one of {', '.join(_VOI_FUNCTIONS)}", path)
    function = _VOI_FUNCTIONS[name]
    if w <= 0 or (function == "linear" and w < 1):
        logger.warning("%s: Window Width %g is not valid for %s; the file's window is not used", path, w, name)
        return None
    return Windowing("window", center=c, width=w, function=function)  # type: ignore[arg-type]


def _voi_lut(ds: Any) -> tuple[Any, int] | None:
    """The first VOI LUT Sequence item and its output depth, if the file has a usable one."""
    items = ds.get("VOILUTSequence")
    if not items:
        return None
    item = items[0]
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or item.get("LUTData") is None or len(descriptor) != 3:
        return None
    return item, int(descriptor[2])


def _apply_voi_lut(ds: Any, values: np.ndarray, path: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Map ``values`` through the file's VOI LUT Sequence to [0, 1], with the record to store."""
    from pydicom.pixels import apply_voi

    found = _voi_lut(ds)
    if found is None:
        return None
    item, depth = found
    if values.dtype.kind == "f":  # LUT inputs are integers (PS3.3 C.11.2.1.1)
        values = np.rint(values).astype(np.int64)
    try:
        mapped = apply_voi(values, ds, index=0)
    except (NotImplementedError, ValueError, AttributeError, struct_error) as err:
        raise DataError(f"unusable VOI LUT Sequence ({type(err).__name__}: {err})", path) from err
    entries, first_mapped = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
    record = {"method": "voi_lut", "lut_entries": entries, "first_mapped": first_mapped, "lut_bits": depth}
    return (mapped.astype(np.float64) / (2**depth - 1)).clip(0.0, 1.0).astype(np.float32), record


def _modality_values(ds: Any, pixels: np.ndarray, path: Path) -> np.ndarray:
    """Stored pixels -> modality values (Modality LUT Sequence, else Rescale Slope/Intercept).

    Integral results are kept as integers so that they can be stored losslessly.
    """
    from pydicom.pixels import apply_modality_lut

    try:
        if not ds.get("ModalityLUTSequence") and float(ds.get("RescaleSlope", 1) or 1) == 1 \
                and float(ds.get("RescaleIntercept", 0) or 0) == 0:
            return pixels
        values = apply_modality_lut(pixels, ds)
    except (ValueError, AttributeError, IndexError, TypeError, struct_error) as err:
        raise DataError(f"unusable Modality LUT ({type(err).__name__}: {err})", path) from err
    if values.dtype.kind == "f" and np.isfinite(values).all() and np.array_equal(values, np.rint(values)) \
            and (values.size == 0 or (values.min() >= -(2**31) and values.max() < 2**31)):
        return values.astype(np.int32)
    return values


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
    values = pixels if samples_per_pixel > 1 else _modality_values(ds, pixels, item.path)
    raw_id = str(ds.get("PatientID", "") or "").strip()
    patient_id = None
    if raw_id:
        patient_id = raw_id if options.keep_patient_ids else pseudonymise(raw_id, options.id_salt)
    spacing, note = _spacing(ds)
    window = voi = None
    if options.file_window and samples_per_pixel == 1:
        voi = _apply_voi_lut(ds, values, item.path)
        window = None if voi is not None else _file_window(ds, item.path)
    invert = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    base = item.names[0].removesuffix(".png")  # type: ignore[index]
    mapped = voi[0] if voi is not None else values
    for i, frame in enumerate(mapped):
        yield Sample(
            name=item.names[0] if frames == 1 else f"{base}_f{i:04d}.png",  # type: ignore[index]
            image=frame,
            window_record=voi[1] if voi is not None else None,
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
