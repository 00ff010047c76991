"""Reading and writing scan images faithfully.

Grayscale stays single-channel and 16-bit stays 16-bit: arrays come back with the dtype
they were written with (``uint8`` or ``uint16``, shape (H, W); RGB as (H, W, 3) ``uint8``).
Masks are stored as 8-bit PNGs with lesion = 255 and read back as ``bool`` arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthmed.errors import DataError
from synthmed.utils.tmpfiles import mkstemp_for

_TOO_LARGE = ("image too large to decode safely ({err}); scans are far smaller, so this is likely a corrupt or "
              "hostile file; resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if it is genuine")


def load_image(path: str | Path) -> np.ndarray:
    """Load an image as an array: (H, W) uint8/uint16 for grayscale, (H, W, 3) uint8 for colour.

    Raises:
        DataError: the file is missing or is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("image file not found", path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16).copy()
            if mode == "I":
                arr = np.asarray(img)
                if arr.min() < 0 or arr.max() > 65535:
                    raise DataError(
                        f"32-bit integer image with values outside [0, 65535]: {arr.min()}..{arr.max()}", path)
                return arr.astype(np.uint16)
            if mode == "L":
                return np.asarray(img, dtype=np.uint8).copy()
            if mode in ("1", "P", "LA"):
                return np.asarray(img.convert("L"), dtype=np.uint8).copy()
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except Image.DecompressionBombError as err:
        raise DataError(_TOO_LARGE.format(err=err), path) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"not a readable image ({err})", path) from err


def load_mask(path: str | Path) -> np.ndarray:
    """Load a lesion mask as a (H, W) bool array (any non-zero pixel is lesion)."""
    arr = load_image(path)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    return arr > 0


#: A lesion mask covering more of the image than this is taken for an inverted mask or an image.
MAX_LESION_FRACTION = 0.5


def load_lesion_mask(path: str | Path, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Load a mask that conditions generation or training, refusing what is not a lesion mask.

    Args:
        path: A PNG (or any image) with the lesion in one non-zero value on a zero background.
        shape: The (H, W) it must have (its image's), if any.

    Returns:
        (H, W) bool lesion mask (all False: a healthy image).

    Raises:
        DataError: naming the file, when its size differs from ``shape``, it has more than two
            grey levels (a soft or anti-aliased mask, or an image), or the lesion covers more
            than half of it (an inverted mask: no brain is left around the lesion).
    """
    arr = load_image(path)
    if arr.ndim == 3:
        if not (arr == arr[..., :1]).all():
            raise DataError("a lesion mask must be grey (one value per pixel); this file is in colour", path)
        arr = arr[..., 0]
    if shape is not None and arr.shape != tuple(shape):
        raise DataError(f"mask is {arr.shape[1]}x{arr.shape[0]} px but its image is {shape[1]}x{shape[0]} px", path)
    levels = np.unique(arr)
    if len(levels) > 2 or (len(levels) == 2 and levels[0] != 0):
        raise DataError(f"not a binary mask: {len(levels)} grey levels ({', '.join(map(str, levels[:4]))}...); "
                        "a lesion mask is 0 outside the lesion and one value inside (threshold a soft mask)", path)
    mask = arr > 0
    if mask.mean() > MAX_LESION_FRACTION:
        raise DataError(f"the lesion covers {100 * mask.mean():.0f} % of the mask, leaving no brain around it: "
                        "is it inverted? (lesion white, everything else black)", path)
    return mask


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as err:
        raise DataError("image file not found", path) from err
    except Image.DecompressionBombError as err:
        raise DataError(_TOO_LARGE.format(err=err), path) from err
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"not a readable image ({err})", path) from err


def to_pil(array: np.ndarray) -> Image.Image:
    """Convert an image array (uint8/uint16 grayscale, uint8 RGB, or bool mask) to PIL."""
    # Pillow infers the mode from the dtype: uint8 -> "L" / "RGB", uint16 -> "I;16".
    if array.dtype == bool:
        return Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8) * 255)
    if array.ndim == 2 and array.dtype in (np.uint8, np.uint16):
        return Image.fromarray(np.ascontiguousarray(array))
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(array))
    raise ValueError(f"unsupported image array: shape {array.shape}, dtype {array.dtype}; "
                     "expected (H, W) uint8/uint16/bool or (H, W, 3) uint8")


def save_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write a PNG so that ``path`` either does not exist or holds the complete image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_for(path.parent, suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            to_pil(array).save(fh, format="PNG")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_float01(array: np.ndarray) -> np.ndarray:
    """Scale an integer image to float32 in [0, 1] by its dtype's range (not by its own min/max)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == bool:
        return array.astype(np.float32)
    raise ValueError(f"expected a uint8, uint16 or bool image, got {array.dtype}")


def quantize(array01: np.ndarray, bits: int = 8) -> np.ndarray:
    """Quantise a float image in [0, 1] to ``uint8`` (bits=8) or ``uint16`` (bits=16), rounding."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    top = 255 if bits == 8 else 65535
    out = np.rint(np.clip(array01, 0.0, 1.0) * top)
    return out.astype(np.uint8 if bits == 8 else np.uint16)
