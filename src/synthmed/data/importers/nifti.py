"""``nifti``: 3-D volumes (``.nii`` / ``.nii.gz``) cut into 2-D slices, with optional lesion labels.

* Volumes are first reoriented to the closest canonical (RAS+) orientation, so ``axis=2``
  is axial, ``axis=1`` coronal and ``axis=0`` sagittal whatever the scanner's storage order.
  Slices are shown in the radiological convention: the patient's right on the image's left,
  anterior (axial) or superior (coronal, sagittal) at the top.
* Windowing, when asked, is computed over the whole volume, so all its slices share one
  mapping. Without windowing, values are stored losslessly (integers in 16 bits).
* ``labels``: a label volume (for a single input volume) or a directory of them, matched by
  file name: ``x.nii.gz`` <-> ``x.nii.gz``, ``x_seg``/``x_label``/``x_mask``/``x_gt``, and
  nnU-Net's ``x_0000`` (image) <-> ``x`` (label). Any non-zero label is lesion (BraTS
  classes 1/2/4 merge into one mask).
* ``slices``: ``all``; ``nonempty`` (default: drop constant slices, e.g. air above the head);
  ``lesion`` (only slices whose mask has a lesion; needs labels).
* ``spacing_mm`` comes from the header's voxel size in the slice plane; ``patient_id``
  from the file name (or the first group of ``patient_regex`` found in it, e.g.
  ``'^(BraTS\\w*?_\\d+)'`` so that a patient's t1/t2/flair volumes share one id).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthmed.data.importers.base import (
    Filtered,
    FormatSpec,
    Sample,
    SourceItem,
    list_files,
    safe_name,
    stem_of,
)
from synthmed.data.importers.pixels import raw_to_storable
from synthmed.data.windowing import Windowing
from synthmed.errors import ConfigError, DataError
from synthmed.findings import BrainMRIFindings, GenericFindings

_SUFFIXES = (".nii", ".nii.gz")
_LABEL_SUFFIX = re.compile(r"_(?:seg|label|labels|mask|gt)$", re.IGNORECASE)
_CHANNEL_SUFFIX = re.compile(r"_\d{4}$")


@dataclass(frozen=True)
class NiftiOptions:
    """Options of the ``nifti`` format.

    Attributes:
        axis: The axis of the canonical (RAS+) volume to slice along: 0 sagittal,
            1 coronal, 2 axial.
        labels: A label volume, or a directory of label volumes matched by file name.
        slices: Which slices to keep: "all", "nonempty" or "lesion".
        modality: Findings written when labels are given: "brain_mri" or "generic".
        patient_regex: A regular expression; the first group of its first match in the
            file name is the patient id (default: the file name without extension).
    """

    axis: int = 2
    labels: str | None = None
    slices: Literal["all", "nonempty", "lesion"] = "nonempty"
    modality: Literal["brain_mri", "generic"] = "brain_mri"
    patient_regex: str | None = None

    def __post_init__(self) -> None:
        if self.axis not in (0, 1, 2):
            raise ConfigError(f"nifti axis must be 0, 1 or 2, got {self.axis!r}")
        if self.slices not in ("all", "nonempty", "lesion"):
            raise ConfigError(f"nifti slices must be all, nonempty or lesion, got {self.slices!r}")
        if self.slices == "lesion" and self.labels is None:
            raise ConfigError("slices='lesion' needs label volumes (labels=PATH)")
        if self.modality not in ("brain_mri", "generic"):
            raise ConfigError(f"nifti modality must be brain_mri or generic, got {self.modality!r}")
        if self.patient_regex is not None:
            try:
                if re.compile(self.patient_regex).groups < 1:
                    raise ConfigError(f"patient_regex {self.patient_regex!r} needs a group (...) for the id")
            except re.error as err:
                raise ConfigError(f"patient_regex {self.patient_regex!r} is not a valid regex: {err}"
                                  ) from err


def _keys(stem: str, label: bool) -> set[str]:
    return {stem, (_LABEL_SUFFIX if label else _CHANNEL_SUFFIX).sub("", stem)}


def discover(src: Path, options: NiftiOptions) -> list[SourceItem]:
    """List the volumes under ``src`` and pair each with its label volume (if ``labels``)."""
    labels = Path(options.labels) if options.labels is not None else None
    if labels is not None and not labels.exists():
        raise DataError("label volume or directory not found", labels)
    if src.is_file():
        volumes = [src]
    else:
        volumes = list_files(src, _SUFFIXES)
        if labels is not None and labels.is_dir():  # labels kept inside the source tree are not images
            volumes = [v for v in volumes if not v.resolve().is_relative_to(labels.resolve())]
    if not volumes:
        raise DataError("no NIfTI volumes (.nii, .nii.gz) found", src)
    label_of: dict[Path, Path | None] = {v: None for v in volumes}
    if labels is not None and labels.is_file():
        if len(volumes) != 1:
            raise DataError(f"labels is one file but the source has {len(volumes)} volumes; pass a directory "
                            "of label volumes matched by file name", labels)
        label_of[volumes[0]] = labels
    elif labels is not None:
        by_key: dict[str, Path] = {}
        for lab in list_files(labels, _SUFFIXES):
            for key in _keys(stem_of(lab), label=True):
                by_key.setdefault(key, lab)
        for v in volumes:
            match = [by_key[k] for k in sorted(_keys(stem_of(v), label=False)) if k in by_key]
            label_of[v] = match[0] if match else None
    return [SourceItem(path=v, info={"labels": label_of[v], "labels_asked": labels is not None})
            for v in volumes]


def _load(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A canonical (RAS+) 3-D array and its voxel sizes in mm."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.as_closest_canonical(nib.load(path))
        data = np.asanyarray(img.dataobj)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(f"not a readable NIfTI volume ({type(err).__name__}: {err})", path) from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"expected a 3-D volume, got shape {data.shape}", path)
    return data, tuple(round(float(z), 6) for z in img.header.get_zooms()[:3])  # float32 header values


def _display(slice_: np.ndarray) -> np.ndarray:
    """A slice (first axis -> columns, second -> rows) in radiological display orientation."""
    return slice_.T[::-1, ::-1]  # rows: anterior/superior first; columns: patient right first


def _patient_id(path: Path, regex: str | None) -> str:
    stem = stem_of(path)
    if regex:
        m = re.search(regex, path.name)
        if m and m.group(1):
            return m.group(1)
    return stem


def read(item: SourceItem, options: NiftiOptions, windowing: Windowing | None = None
         ) -> Iterator[Sample | Filtered]:
    """Slice one volume (and its label volume) into samples."""
    if item.info["labels_asked"] and item.info["labels"] is None:
        raise DataError("no label volume matches this volume's file name", item.path)
    volume, zooms = _load(item.path)
    mask_volume = None
    if item.info["labels"] is not None:
        mask_volume, _ = _load(item.info["labels"])
        if mask_volume.shape != volume.shape:
            raise DataError(f"label volume {item.info['labels']} has shape {mask_volume.shape} but the "
                            f"volume has {volume.shape}; they must match", item.path)
        mask_volume = mask_volume != 0
    constant = _constant_slices(volume, options.axis)
    if windowing is not None:
        mapped, record = windowing.apply(volume)
    else:
        try:
            mapped, record = raw_to_storable(volume)
        except ValueError as err:
            raise DataError(str(err), item.path) from err
    in_plane = [z for i, z in enumerate(zooms) if i != options.axis]
    square = math.isclose(in_plane[0], in_plane[1], rel_tol=1e-3) and in_plane[0] > 0
    spacing = in_plane[0] if square else None
    notes = [] if spacing is not None else [f"{item.path}: non-square voxels in the slice plane {in_plane}; "
                                            "spacing_mm left empty"]
    patient = _patient_id(item.path, options.patient_regex)
    stem = stem_of(item.path)
    for k in range(volume.shape[options.axis]):
        mask = None if mask_volume is None else _display(np.take(mask_volume, k, axis=options.axis))
        if (options.slices == "nonempty" and constant[k]) or (options.slices == "lesion" and not mask.any()):
            yield Filtered()
            continue
        fields: dict[str, Any] = {"patient_id": patient, "source": "real"}
        if mask is not None:
            fields.update(_lesion_fields(bool(mask.any()), options.modality))
        yield Sample(
            name=safe_name(stem, f"ax{options.axis}", f"{k:04d}"),
            image=_display(np.take(mapped, k, axis=options.axis)),
            mask=mask,
            spacing_mm=spacing,
            fields=fields,
            window_record=record,  # None: stored values need no record (uint8/uint16 as they are)
            notes=notes if k == 0 else [],
        )


def _constant_slices(volume: np.ndarray, axis: int) -> np.ndarray:
    other = tuple(i for i in range(3) if i != axis)
    return np.asarray(volume.max(axis=other) == volume.min(axis=other))


def _lesion_fields(present: bool, modality: str) -> dict[str, Any]:
    if modality == "brain_mri":
        return {"label": "tumor" if present else "notumor",
                "findings": BrainMRIFindings(tumor_present=present)}
    return {"label": "lesion" if present else "no_lesion",
            "findings": GenericFindings(label="lesion" if present else "no_lesion", abnormal=present)}


FORMAT = FormatSpec(
    name="nifti",
    description="NIfTI volumes sliced along an axis, optional label volumes -> masks",
    options_type=NiftiOptions,
    discover=discover,
    read=read,
)
