"""Image preparation for feature extractors, one documented convention at a time.

Stored images arrive as (H, W) uint8/uint16 grayscale, (H, W, 3) uint8 RGB, or float arrays
in [0, 1]. :func:`prepare_batch` turns them into a (B, 3, S, S) float tensor:

1. values to float without losing bits — uint8 / 255, uint16 / 65535 — unless the
   convention takes 8-bit input (torch-fidelity's Inception does), in which case 16-bit is
   rounded to 8 bit (``round(v / 257)``) and that is recorded;
2. resize with the convention's method (TF1 bilinear, PIL bicubic on float, or torch
   antialiased bilinear/bicubic), per channel, on the original number of channels;
3. grayscale replicated to three channels;
4. scaled to the value range the network expects (0..255 or 0..1); normalisation is the
   extractor's own step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import synthmed.data.imageio as imageio

ResizeMethod = Literal["tf1-bilinear", "pil-bicubic", "bilinear-antialias", "bicubic-antialias", "bicubic"]
RESIZE_METHODS: tuple[str, ...] = ResizeMethod.__args__  # type: ignore[attr-defined]


def bit_depth(image: np.ndarray) -> str:
    """"8-bit", "16-bit" or "float" for a stored image array."""
    if image.dtype == np.uint8:
        return "8-bit"
    if image.dtype == np.uint16:
        return "16-bit"
    if np.issubdtype(image.dtype, np.floating):
        return "float"
    raise ValueError(f"unsupported image dtype {image.dtype}; expected uint8, uint16 or float in [0, 1]")


def _channels_last(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim == 3 and image.shape[2] in (1, 3):
        return image
    raise ValueError(f"unsupported image shape {image.shape}; expected (H, W), (H, W, 1) or (H, W, 3)")


def to_float01(image: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 in [0, 1], C = 1 or 3, without quantising (integers by their dtype's range; floats clipped)."""
    img = _channels_last(image)
    if bit_depth(image) in ("8-bit", "16-bit"):
        return imageio.to_float01(img)
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def to_uint8(image: np.ndarray, *, truncate: bool = False) -> np.ndarray:
    """(H, W, C) uint8: uint8 unchanged, uint16 rounded (v / 257), float rounded (x * 255).

    ``truncate=True`` converts float input as torchmetrics' ``normalize=True`` does,
    ``(x * 255).byte()``, which rounds down.
    """
    depth = bit_depth(image)
    img = _channels_last(image)
    if depth == "8-bit":
        return img
    if depth == "16-bit":
        return np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    scaled = np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0
    return (np.floor(scaled) if truncate else np.round(scaled)).astype(np.uint8)


def resize_tf1_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1.x ``tf.image.resize_bilinear(align_corners=False)``.

    TF1 maps output pixel ``i`` to input coordinate ``i * in / out`` (no half-pixel offset)
    and interpolates between ``floor`` and ``min(floor + 1, in - 1)``; this is the resize
    inside the original FID graph, reproduced by torch-fidelity and torchmetrics
    (``antialias=False``). Arithmetic follows TF's order in float32.

    Args:
        x: (B, C, H, W) float tensor.
        size: Output (height, width).
    """
    if x.ndim != 4 or not torch.is_floating_point(x):
        raise ValueError(f"expected a (B, C, H, W) float tensor, got {tuple(x.shape)} {x.dtype}")
    out_h, out_w = size
    in_h, in_w = x.shape[-2:]

    def axis(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=x.dtype, device=x.device) * torch.tensor(n_in / n_out, dtype=torch.float32)
        lo = src.long()  # floor: src >= 0
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, src - lo.to(x.dtype)

    y_lo, y_hi, dy = axis(out_h, in_h)
    x_lo, x_hi, dx = axis(out_w, in_w)
    top = x.index_select(2, y_lo)
    bottom = x.index_select(2, y_hi)
    dx = dx.view(1, 1, 1, out_w)
    top = top.index_select(3, x_lo) + (top.index_select(3, x_hi) - top.index_select(3, x_lo)) * dx
    bottom = bottom.index_select(3, x_lo) + (bottom.index_select(3, x_hi) - bottom.index_select(3, x_lo)) * dx
    return top + (bottom - top) * dy.view(1, 1, out_h, 1)


def resize_pil_bicubic(channel: np.ndarray, size: tuple[int, int], clip_max: float) -> np.ndarray:
    """clean-fid's resize: PIL bicubic on a float32 ("F" mode) channel, clipped to [0, clip_max].

    Args:
        channel: (H, W) float array.
        size: Output (height, width).
        clip_max: Upper clip value (255 for clean-fid's 0..255 convention).
    """
    img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
    img = img.resize((size[1], size[0]), resample=Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32).clip(0.0, clip_max)


def _resize_one(img: np.ndarray, size: tuple[int, int], method: str, clip_max: float) -> torch.Tensor:
    """(H, W, C) float array -> (C, S, S) float tensor (identity when already that size)."""
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {method!r}; expected one of {', '.join(RESIZE_METHODS)}")
    if img.shape[:2] == tuple(size):
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    if method == "pil-bicubic":
        chans = [resize_pil_bicubic(img[:, :, c], size, clip_max) for c in range(img.shape[2])]
        return torch.from_numpy(np.stack(chans))
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    if method == "tf1-bilinear":
        return resize_tf1_bilinear(t, size)[0]
    if method == "bilinear-antialias":
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    if method == "bicubic-antialias":
        return F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True)[0]
    return F.interpolate(t, size=size, mode="bicubic", align_corners=False)[0]


def prepare_batch(images: Sequence[np.ndarray], *, size: int | tuple[int, int], resize: str,
                  uint8_input: bool, scale: float, truncate_float: bool = False, channels: int = 3) -> torch.Tensor:
    """Stored images -> (B, ``channels``, S, S) float32 network input in [0, ``scale``].

    Args:
        images: (H, W) uint8/uint16, (H, W, 3) uint8, or float arrays in [0, 1]; sizes may differ.
        size: Output side (or (height, width)).
        resize: One of :data:`RESIZE_METHODS`.
        uint8_input: Quantise to 8 bit first (the torch-fidelity convention); otherwise
            16-bit values are kept as float.
        scale: 255.0 for networks that take 0..255, 1.0 for 0..1.
        truncate_float: With ``uint8_input``, convert float images by truncation (torchmetrics).
        channels: 3 (grayscale replicated) or 1 (RGB averaged to one channel; grayscale as is).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if not len(images):
        raise ValueError("prepare_batch needs at least one image")
    out = []
    for image in images:
        if uint8_input:
            img = to_uint8(image, truncate=truncate_float).astype(np.float32) * np.float32(scale / 255.0)
        else:
            img = to_float01(image) * np.float32(scale)
        if channels == 1 and img.shape[2] == 3:
            img = img.mean(axis=2, keepdims=True)
        t = _resize_one(img, hw, resize, clip_max=scale)
        if channels == 3 and t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        out.append(t)
    return torch.stack(out).float().contiguous()


def describe(*, size: int | tuple[int, int], resize: str, uint8_input: bool, scale: float,
             normalize: str, convention: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a preprocessing for ``metrics.json``."""
    hw = [size, size] if isinstance(size, int) else list(size)
    return {
        "convention": convention,
        "resize": resize,
        "size": hw,
        "quantisation": ("8-bit: uint16 rounded to round(v/257), float to round(x*255) before resizing"
                         if uint8_input else "none: 8-bit /255, 16-bit /65535, kept as float"),
        "input_range": f"0..{scale:g}",
        "grayscale": "replicated to 3 channels after resizing",
        "normalize": normalize,
        **(extra or {}),
    }
