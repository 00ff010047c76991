"""Pictures of a localisation: a heatmap blended on the scan, and the seed's red region."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from synthmed.viz import to_rgb8

# A compact 'jet'-like colour ramp: (position, (r, g, b)).
_RAMP = np.array([[0.0, 0, 0, 128], [0.125, 0, 0, 255], [0.375, 0, 255, 255], [0.625, 255, 255, 0],
                  [0.875, 255, 0, 0], [1.0, 128, 0, 0]], dtype=np.float32)


def colormap(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours on a blue-to-red ramp."""
    v = np.clip(values, 0.0, 1.0)
    rgb = np.stack([np.interp(v, _RAMP[:, 0], _RAMP[:, c]) for c in (1, 2, 3)], axis=-1)
    return rgb.round().astype(np.uint8)


def heatmap_overlay(image: np.ndarray, anomaly_map: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The scan with the anomaly map blended on top, (H, W, 3) uint8."""
    base = to_rgb8(image).astype(np.float32)
    heat = colormap(anomaly_map).astype(np.float32)
    return (base * (1 - alpha) + heat * alpha).round().astype(np.uint8)


def red_region_overlay(image: np.ndarray, region: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The scan with ``region`` tinted red and outlined (seed 003: "the red region marks the tumour")."""
    rgb = to_rgb8(image).astype(np.float32)
    red = np.array([255.0, 0.0, 0.0])
    rgb[region] = rgb[region] * (1 - alpha) + red * alpha
    edge = region & ~ndimage.binary_erosion(region)
    rgb[edge] = red
    return rgb.round().astype(np.uint8)
