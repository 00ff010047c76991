"""Dataset directories -> image tensors and class labels for classifier training.

Images are read as stored (8/16-bit grayscale or 8-bit RGB), scaled to [0, 1] by their
dtype's range (:func:`synthmed.data.imageio.to_float01`), padded to a square with zeros
(aspect ratio kept) and resized with antialiased bilinear interpolation. They are cached
as ``float16`` with the channels they were stored with (1 or 3); :func:`to_channels`
converts a batch to the model's channel count when it is used, so the paper preset
(3 channels, 512 px) does not keep three copies of every grayscale pixel in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import to_float01
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError, DataError
from synthmed.findings.schema import BrainMRIFindings

logger = logging.getLogger(__name__)

Task = Literal["binary", "multiclass"]
TASKS: tuple[str, ...] = ("binary", "multiclass")
#: Class names by task; the index is the class id. Class 0 is always "no tumour".
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "binary": ("no_tumor", "tumor"),
    "multiclass": ("none", "glioma", "meningioma", "pituitary"),
}
#: ``label`` strings read as "no tumour" (case-insensitive).
NEGATIVE_LABELS = frozenset({"no_tumor", "no tumor", "notumor", "no-tumor", "none", "healthy", "normal",
                             "negative", "0"})


def record_findings(rec: DatasetRecord, *, prefer_requested: bool = True) -> BrainMRIFindings | None:
    """The findings a row is labelled with.

    A generated row is labelled with what it was asked to show (``requested_findings``);
    every other row with its ``findings``. Non-brain findings give None.
    """
    candidates = (rec.requested_findings, rec.findings) if prefer_requested else (rec.findings,)
    for f in candidates:
        if isinstance(f, BrainMRIFindings):
            return f
    return None


def record_class(rec: DatasetRecord, task: str) -> int:
    """The class id of a row for ``task`` ("binary" or "multiclass").

    Binary: tumour present (1) or not (0), from the findings, else from ``label``.
    Multi-class: none / glioma / meningioma / pituitary, from ``findings.tumor_type``
    (none when no tumour), else from ``label``.

    Raises:
        DataError: naming the row when it carries no usable label.
    """
    if task not in CLASS_NAMES:
        raise ConfigError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    f = record_findings(rec)
    label = (rec.label or "").strip().lower()
    if task == "binary":
        if f is not None:
            return int(f.tumor_present)
        if label:
            return 0 if label in NEGATIVE_LABELS else 1
        raise DataError(f"row {rec.file_name!r} has neither brain findings nor a label, so tumour vs no tumour "
                        "is unknown")
    names = CLASS_NAMES["multiclass"]
    if f is not None and not f.tumor_present:
        return 0
    if f is not None and f.tumor_type is not None:
        return names.index(f.tumor_type)
    if label in NEGATIVE_LABELS:
        return 0
    if label in names:
        return names.index(label)
    raise DataError(f"row {rec.file_name!r}: multi-class mode needs findings.tumor_type or a label in "
                    f"{list(names)} (or a no-tumour label), got label={rec.label!r}")


def labels_for(records: Sequence[DatasetRecord], task: str) -> torch.Tensor:
    """(N,) int64 class ids of ``records``."""
    return torch.tensor([record_class(r, task) for r in records], dtype=torch.long)


def prepare_image(image: np.ndarray, size: int) -> torch.Tensor:
    """One stored image -> (C, size, size) float32 in [0, 1], C = 1 (grayscale) or 3 (RGB).

    Zero-pads to a square (keeping the aspect ratio), then resizes with antialiased
    bilinear interpolation.
    """
    x = torch.from_numpy(to_float01(image))
    x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
    _, h, w = x.shape
    if h != w:
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        x = F.pad(x, (left, side - w - left, top, side - h - top))
    if x.shape[-1] != size:
        x = F.interpolate(x.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > size).squeeze(0).clamp_(0, 1)
    return x


def load_images(ds: ImageDataset, records: Sequence[DatasetRecord], size: int, *,
                progress: bool = True, desc: str = "load") -> torch.Tensor:
    """Read, pad and resize the images of ``records``.

    Returns:
        (N, C, size, size) float16 in [0, 1]; C is 3 if any image is RGB, else 1
        (grayscale images are repeated into 3 channels when mixed with RGB ones).
    """
    if not records:
        return torch.zeros(0, 1, size, size, dtype=torch.float16)
    items = [prepare_image(ds.image(r), size) for r in tqdm(records, desc=desc, unit="img", disable=not progress,
                                                              leave=False)]
    channels = max(x.shape[0] for x in items)
    out = torch.empty(len(items), channels, size, size, dtype=torch.float16)
    for i, x in enumerate(items):
        out[i] = x.expand(channels, -1, -1)
    return out


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """A float32 batch with ``channels`` channels (1 <-> 3 by luminance / repetition)."""
    x = x.float()
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        luma = [0.299, 0.587, 0.114]  # ITU-R BT.601
        weights = torch.tensor(luma, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True)
    raise ConfigError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
