"""``figshare``: the figshare brain-tumour dataset (Cheng et al. 2015), one ``.mat`` per slice.

Each file holds a struct ``cjdata`` with:

* ``image``: the T1-weighted contrast-enhanced slice, int16, values up to a few thousand;
* ``tumorMask``: the lesion mask (same size);
* ``label``: 1 = meningioma, 2 = glioma, 3 = pituitary tumour;
* ``PID``: the patient id (the dataset's own anonymous id), stored as uint16 character codes;
* ``tumorBorder``: the outline's coordinates (not needed: the mask carries it).

The published files are MATLAB v7.3, i.e. HDF5, read with h5py. MATLAB writes arrays
column-major, so h5py sees them transposed; they are transposed back here. Older
MATLAB v5 files with the same struct are read with :func:`scipy.io.loadmat`.
``cvind.mat`` (the dataset's cross-validation folds) is ignored. Images keep their 16-bit
values unless a windowing is requested.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.data.importers.base import FormatSpec, Sample, SourceItem, list_files, safe_name
from synthmed.data.windowing import Windowing
from synthmed.errors import DataError
from synthmed.findings import BrainMRIFindings

logger = logging.getLogger(__name__)

LABELS: dict[int, str] = {1: "meningioma", 2: "glioma", 3: "pituitary"}
FIELDS: tuple[str, ...] = ("image", "tumorMask", "label", "PID")
_IGNORED = ("cvind.mat",)


@dataclass(frozen=True)
class FigshareOptions:
    """The ``figshare`` format has no options of its own."""


def discover(src: Path, options: FigshareOptions) -> list[SourceItem]:
    """List the ``.mat`` files: ``src`` is one file or a directory searched recursively."""
    if src.is_file():
        files = [src]
    else:
        files = [p for p in list_files(src, [".mat"]) if p.name.lower() not in _IGNORED]
    if not files:
        raise DataError("no .mat files found; expected the figshare brain-tumour files (1.mat, 2.mat, ...)",
                        src)
    return [SourceItem(path=p, names=(safe_name(p.stem),)) for p in files]


def _read_v73(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as fh:
        if "cjdata" not in fh:
            raise DataError(f"no 'cjdata' struct (found {sorted(fh.keys())}); expected a figshare "
                            "brain-tumour .mat", path)
        group = fh["cjdata"]
        missing = [f"cjdata/{k}" for k in FIELDS if k not in group]
        if missing:
            raise DataError(f"missing field(s) {', '.join(missing)}; a figshare file has cjdata/"
                            f"{{{','.join(FIELDS)}}}", path)
        # MATLAB is column-major: h5py sees every matrix transposed.
        return {
            "image": np.asarray(group["image"]).T,
            "tumorMask": np.asarray(group["tumorMask"]).T,
            "label": np.asarray(group["label"]).ravel(),
            "PID": "".join(chr(int(c)) for c in np.asarray(group["PID"]).ravel() if c),
        }


def _read_v5(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "cjdata" not in mat:
        raise DataError("no 'cjdata' struct; expected a figshare brain-tumour .mat", path)
    cj = mat["cjdata"]
    missing = [f"cjdata/{k}" for k in FIELDS if not hasattr(cj, k)]
    if missing:
        raise DataError(f"missing field(s) {', '.join(missing)}", path)
    pid = cj.PID
    if not isinstance(pid, str):
        pid = "".join(chr(int(c)) for c in np.ravel(pid) if c)
    return {"image": np.asarray(cj.image), "tumorMask": np.asarray(cj.tumorMask),
            "label": np.ravel(cj.label), "PID": pid}


def read_mat(path: Path) -> dict[str, Any]:
    """The ``cjdata`` fields of one file: image (H, W), tumorMask (H, W), label (1-D), PID (str).

    Raises:
        DataError: the file is not a readable MATLAB file, or lacks a field.
    """
    import h5py

    try:
        return _read_v73(path) if h5py.is_hdf5(path) else _read_v5(path)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, NotImplementedError) as err:
        raise DataError(f"not a readable MATLAB file ({type(err).__name__}: {err}); expected a figshare "
                        "brain-tumour .mat (MATLAB v7.3 / HDF5)", path) from err


def read(item: SourceItem, options: FigshareOptions, windowing: Windowing | None = None) -> Iterator[Sample]:
    """Read one ``.mat`` slice with its mask, label and patient id."""
    data = read_mat(item.path)
    image = data["image"]
    if image.ndim != 2:
        raise DataError(f"cjdata/image has shape {image.shape}; expected a 2-D slice", item.path)
    label_values = data["label"]
    code = int(label_values[0]) if label_values.size else None
    if code not in LABELS:
        raise DataError(f"cjdata/label is {code!r}; expected 1 (meningioma), 2 (glioma) or 3 (pituitary)",
                        item.path)
    tumor_type = LABELS[code]
    fields = {
        "label": tumor_type,
        "patient_id": data["PID"] or None,
        "findings": BrainMRIFindings(tumor_present=True, tumor_type=tumor_type),
        "source": "real",
    }
    yield Sample(name=item.names[0], image=image, mask=data["tumorMask"], fields=fields)  # type: ignore[index]


FORMAT = FormatSpec(
    name="figshare",
    description="figshare brain-tumour .mat files (cjdata: image, tumorMask, label, PID)",
    options_type=FigshareOptions,
    discover=discover,
    read=read,
)
