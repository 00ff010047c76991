"""From raw scanner values to stored pixels: windowing, bit depth, padding and resizing.

Rules (the same for every import format):

* Grayscale stays single-channel: a colour image whose three channels are equal (within
  JPEG rounding, :data:`GRAY_TOLERANCE`) is stored as (H, W). True colour (endoscopy) is
  stored as (H, W, 3) uint8 and never windowed.
* Without windowing, values are stored losslessly: uint8 stays uint8, other integer data
  become uint16. Signed data with negative values (CT in Hounsfield units) are shifted by
  +32768 and the row's ``windowing`` field records ``{"method": "none", "raw_offset": -32768}``
  (raw = pixel + raw_offset). Values that are not integers, or do not fit 16 bits, need a
  windowing.
* With windowing, values map to [0, 1] (see :class:`~synthmed.data.windowing.Windowing`)
  and are quantised to ``bits`` (8 by default); the record gets ``"bits"`` so the mapping
  can be inverted: raw = raw_low + pixel / (2**bits - 1) * (raw_high - raw_low).
* Sources that show low values as white (DICOM MONOCHROME1) are inverted after windowing
  and the record gets ``"inverted": true``; without windowing the values are kept and only
  the record says so.
* ``size``: pad to a centred square with the image minimum, then resize to size x size
  (images with a Lanczos filter, masks with nearest neighbour); the pixel spacing scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from synthmed.data.imageio import quantize
from synthmed.data.importers.base import Sample
from synthmed.data.windowing import Windowing
from synthmed.errors import DataError

SIGNED_OFFSET = -32768


@dataclass
class Prepared:
    """A sample ready for :meth:`DatasetWriter.add`.

    Attributes:
        image: (H, W) uint8/uint16 or (H, W, 3) uint8.
        mask: (H, W) bool or None.
        spacing_mm: Pixel spacing after resizing, or None.
        windowing: The row's ``windowing`` field.
    """

    image: np.ndarray
    mask: np.ndarray | None
    spacing_mm: float | None
    windowing: dict[str, Any] | None


#: Largest channel difference (in levels) of a colour image still stored as grayscale: JPEG
#: encoders round gray pixels saved as RGB to channels that differ by a level or two.
GRAY_TOLERANCE = 2


def squeeze_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 1), or (H, W, 3) whose channels agree within :data:`GRAY_TOLERANCE` -> (H, W)."""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 3:
        wide = image.astype(np.int32)
        spread = int((wide.max(axis=2) - wide.min(axis=2)).max()) if image.size else 0
        if spread == 0:
            return image[..., 0]
        if spread <= GRAY_TOLERANCE:
            return np.rint(wide.mean(axis=2)).astype(image.dtype)
    return image


def raw_to_storable(raw: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Store raw values losslessly as uint8/uint16 (see the module rules).

    Returns:
        The stored array and the ``windowing`` record (None unless an offset was applied).

    Raises:
        ValueError: the values are not finite integers that fit in 16 bits.
    """
    if raw.dtype in (np.uint8, np.uint16):
        return raw, None
    if raw.dtype == bool:
        return raw.astype(np.uint8), None
    values = np.asarray(raw)
    if not np.all(np.isfinite(values)):
        raise ValueError("the image has NaN or infinite values; pass a windowing (e.g. percentile:0.5:99.5)")
    lo, hi = float(values.min()), float(values.max())
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise ValueError(f"the image has non-integer {values.dtype} values ({lo:g}..{hi:g}); 16-bit storage "
                         "would lose them: pass a windowing (e.g. percentile:0.5:99.5 or minmax)")
    if values.dtype.itemsize == 1 and lo >= 0 and hi <= 255:
        return values.astype(np.uint8), None
    if lo >= 0 and hi <= 65535:
        return values.astype(np.uint16), None
    if lo >= -32768 and hi <= 32767:
        return (values.astype(np.int32) - SIGNED_OFFSET).astype(np.uint16), {"method": "none",
                                                                            "raw_offset": SIGNED_OFFSET}
    raise ValueError(f"values {lo:g}..{hi:g} do not fit in 16 bits; pass a windowing (e.g. minmax)")


def _resize_channel(channel: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))  # mode "F"
    return np.asarray(img.resize((size, size), resample=resample), dtype=np.float32)


def pad_and_resize(image: np.ndarray, mask: np.ndarray | None, size: int
                   ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Pad ``image`` (and ``mask``) to a centred square, then resize to ``size`` x ``size``.

    Args:
        image: (H, W) or (H, W, C), integer or float32 in [0, 1].
        mask: (H, W) bool or None.
        size: The output side in pixels.

    Returns:
        The resized image (same dtype; integers rounded and clipped to the input's range),
        the resized mask, and the scale factor (input pixels per output pixel).
    """
    h, w = image.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    work = image.astype(np.float32).reshape(h, w, -1)
    lo, hi = work.min(axis=(0, 1)), work.max(axis=(0, 1))
    padded = np.empty((side, side, work.shape[2]), dtype=np.float32)
    padded[:] = lo  # background = the image minimum (per channel)
    padded[top:top + h, left:left + w] = work
    out = np.stack([_resize_channel(padded[..., c], size, Image.Resampling.LANCZOS)
                    for c in range(work.shape[2])], axis=-1)
    out = np.clip(out, lo, hi)  # Lanczos rings past the input range; keep inside it
    out = out[..., 0] if image.ndim == 2 else out
    if image.dtype.kind in "ui":
        out = np.rint(out).astype(image.dtype)
    new_mask = None
    if mask is not None:
        pm = np.zeros((side, side), dtype=np.uint8)
        pm[top:top + h, left:left + w] = mask.astype(np.uint8)
        new_mask = np.asarray(Image.fromarray(pm).resize((size, size), Image.Resampling.NEAREST)) > 0
    return out, new_mask, side / size


def prepare(sample: Sample, windowing: Windowing | None, bits: int | None, size: int | None,
            *, source: str) -> Prepared:
    """Turn a raw sample into stored pixels (see the module rules).

    Args:
        sample: What the importer read.
        windowing: The import's windowing (``sample.windowing`` overrides it).
        bits: Depth of windowed images, 8 (default) or 16.
        size: Output side in pixels, or None to keep the size.
        source: The input file, for error messages.

    Raises:
        DataError: the mask size differs from the image, or raw values cannot be stored.
    """
    image = squeeze_gray(np.asarray(sample.image))
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise DataError(f"expected a 2-D grayscale or RGB image, got shape {image.shape}", source)
    record = sample.window_record
    windowed = record is not None and image.dtype.kind == "f"
    if record is None:
        win = sample.windowing or windowing
        if image.ndim == 3:
            if image.dtype != np.uint8:
                raise DataError(f"colour images must be 8-bit, got {image.dtype}", source)
        elif win is not None:
            image, record = win.apply(image)
            windowed = True
        else:
            try:
                image, record = raw_to_storable(image)
            except ValueError as err:
                raise DataError(str(err), source) from err
    if sample.invert:
        if windowed:
            image = 1.0 - image
        record = {**(record or {"method": "none"}), "inverted": True}
    mask = None
    if sample.mask is not None:
        mask = np.asarray(sample.mask) > 0
        if mask.shape != image.shape[:2]:
            raise DataError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                            f"{image.shape[1]}x{image.shape[0]} (width x height); they must match", source)
    spacing = sample.spacing_mm
    if size is not None:
        image, mask, scale = pad_and_resize(image, mask, size)
        spacing = spacing * scale if spacing is not None else None
    if windowed:
        depth = bits or 8
        image = quantize(image, depth)
        record = {**(record or {}), "bits": depth}
    return Prepared(image=image, mask=mask, spacing_mm=spacing, windowing=record)
