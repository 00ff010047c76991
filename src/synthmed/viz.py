"""Small image helpers for grids and overlays (docs, reports, sample grids).

All functions take and return NumPy arrays: grayscale (H, W) or RGB (H, W, 3) uint8.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any stored image (uint8/uint16 grayscale or RGB) as (H, W, 3) uint8."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image


def overlay_outline(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 40, 40)) -> np.ndarray:
    """Draw the one-pixel outline of ``mask`` on ``image`` in ``color``."""
    rgb = to_rgb8(image).copy()
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = color
    return rgb


def image_grid(images: Sequence[np.ndarray], ncols: int, pad: int = 2, fill: int = 0) -> np.ndarray:
    """Tile equally sized images into a grid, row by row, with ``pad`` pixels between them."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    tiles = [to_rgb8(im) for im in images]
    h, w = tiles[0].shape[:2]
    nrows = -(-len(tiles) // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), fill, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = tile
    return grid
