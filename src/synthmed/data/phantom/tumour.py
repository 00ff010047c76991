"""Tumours with exactly known geometry and appearance, painted into a phantom slice.

A tumour outline is a star-shaped curve ``R(θ)`` around its centre: an ellipse (long axis
at angle ``φ``, elongation ``e`` = long / short axis) modulated by low-order harmonics
(lobulated) or many rough harmonics (irregular). The outline is scaled so that its
largest diameter (maximum Feret diameter) is exactly the requested size in mm, so the
size in the ground truth is the size of what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

ORIENTATION_ANGLES_DEG = {"horizontal": (0.0,), "vertical": (90.0,), "oblique": (45.0, 135.0)}
#: Largest diameters (mm) sampled per size category: inside the category with a margin of
#: at least 2 mm from each boundary, so the label is unambiguous at the pixel size.
SIZE_RANGES_MM = {"small": (10.0, 18.0), "medium": (22.0, 38.0), "large": (42.0, 56.0)}


@dataclass(frozen=True)
class TumourSpec:
    """Everything needed to draw one tumour (output-image coordinates, mm units)."""

    diameter_mm: float
    shape: str
    intensity: str
    orientation: str | None
    angle_deg: float  # long axis angle in the image, counter-clockwise from the image x axis
    elongation: float
    harmonics: tuple[tuple[int, float, float], ...]  # (order, amplitude, phase)
    edema: bool
    mass_effect: bool
    texture_seed: int


def sample_tumour(rng: np.random.Generator, *, size_category: str, shape: str, intensity: str,
                  edema: bool, mass_effect: bool) -> TumourSpec:
    """Draw a tumour of the given attributes (orientation and exact size are drawn here)."""
    lo, hi = SIZE_RANGES_MM[size_category]
    diameter = float(rng.uniform(lo, hi))
    harmonics: list[tuple[int, float, float]] = []
    if shape == "round":
        elongation, orientation = float(rng.uniform(1.0, 1.06)), None
    else:
        elongation = float(rng.uniform(1.55, 2.0) if shape == "oval" else rng.uniform(1.45, 1.8))
        orientation = str(rng.choice(list(ORIENTATION_ANGLES_DEG)))
    if shape == "lobulated":
        for order in rng.choice([3, 4, 5], size=2, replace=False):
            harmonics.append((int(order), float(rng.uniform(0.10, 0.16)), float(rng.uniform(0, 2 * np.pi))))
    elif shape == "irregular":
        # Infiltrative margin: strong energy at high angular orders (finger-like spurs).
        for order in range(3, 12):  # order 2 would change the long axis; the ellipse sets it
            amp = float(rng.uniform(0.5, 1.0) * 0.42 / order**0.55)
            harmonics.append((order, amp, float(rng.uniform(0, 2 * np.pi))))
    if orientation is None:
        angle = float(rng.uniform(0, 180))
    else:
        angle = float(rng.choice(ORIENTATION_ANGLES_DEG[orientation]) + rng.uniform(-12, 12))
    return TumourSpec(diameter, shape, intensity, orientation, angle, elongation, tuple(harmonics),
                      edema, mass_effect, int(rng.integers(2**31)))


def _unit_radius(spec: TumourSpec, theta: np.ndarray) -> np.ndarray:
    """Outline radius at angle ``theta`` (relative to the long axis), before size scaling."""
    a, b = 1.0, 1.0 / spec.elongation
    r = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
    mod = np.ones_like(theta)
    for order, amp, phase in spec.harmonics:
        mod += amp * np.cos(order * theta + phase)
    return r * np.clip(mod, 0.35, None)


def _max_feret(spec: TumourSpec) -> float:
    theta = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = _unit_radius(spec, theta)
    pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    return float(d.max())


def outline_radius_mm(spec: TumourSpec, theta: np.ndarray) -> np.ndarray:
    """Outline radius (mm) at angle ``theta`` relative to the long axis."""
    return _unit_radius(spec, theta) * (spec.diameter_mm / _max_feret(spec))


def max_radius_mm(spec: TumourSpec) -> float:
    """Largest distance from the centre to the outline, in mm."""
    return float(outline_radius_mm(spec, np.linspace(0, 2 * np.pi, 360, endpoint=False)).max())


def polar_grid(size: int, centre: tuple[float, float], spacing: float,
               angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) and angle relative to a long axis at ``angle_deg``, for every pixel."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    dy = (rows - centre[0]) * spacing
    dx = (cols - centre[1]) * spacing
    r = np.hypot(dx, dy)
    # Image y points down; angles are counter-clockwise as seen on screen.
    theta = np.arctan2(-dy, dx) - np.deg2rad(angle_deg)
    return r, theta


def mass_effect_coords(coords: np.ndarray, centre: tuple[float, float], radius_px: float,
                       strength: float = 0.35) -> np.ndarray:
    """Push tissue away from the tumour centre by resampling the coordinate map.

    Output pixel p takes its tissue from ``c + (p - c) * (1 - k exp(-(|p - c| / L)^2))``
    with ``L = 1.6 R``: tissue near the tumour is displaced outward and compressed.
    """
    size = coords.shape[1]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    dr, dc = rows - centre[0], cols - centre[1]
    dist = np.hypot(dr, dc)
    factor = 1.0 - strength * np.exp(-((dist / (1.6 * radius_px)) ** 2))
    src = np.stack([centre[0] + dr * factor, centre[1] + dc * factor])
    return np.stack([ndimage.map_coordinates(coords[i], src, order=1, mode="nearest") for i in (0, 1)])


def _outline_distance(size: int, spec: TumourSpec, centre: tuple[float, float],
                      spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: distance (mm) and angle from the centre, the outline radius (mm) on that ray, and the
    signed distance to the outline along the ray in pixels (> 0 inside)."""
    r, theta = polar_grid(size, centre, spacing, spec.angle_deg)
    big_r = outline_radius_mm(spec, theta)
    return r, theta, big_r, (big_r - r) / spacing


def tumour_mask(size: int, spec: TumourSpec, centre: tuple[float, float], spacing: float) -> np.ndarray:
    """(size, size) bool mask of the pixel centres inside the tumour outline (what :func:`paint_tumour` returns)."""
    return _outline_distance(size, spec, centre, spacing)[3] >= 0


def paint_tumour(img: np.ndarray, brain: np.ndarray, spec: TumourSpec, centre: tuple[float, float],
                 spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Paint the tumour (and edema) into ``img``.

    Args:
        img: (S, S) float image in [0, 1] (template intensities, before scanner effects).
        brain: (S, S) bool brain mask of this slice.
        spec: The tumour.
        centre: Its centre (row, col) in pixels.
        spacing: Pixel size in mm.

    Returns:
        The painted image and the (S, S) bool tumour mask (pixel centres inside the outline).
    """
    r, theta, big_r, inside_px = _outline_distance(img.shape[0], spec, centre, spacing)
    alpha = np.clip(inside_px + 0.5, 0.0, 1.0)
    mask = inside_px >= 0
    rng = np.random.default_rng(spec.texture_seed)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, img.shape), 1.2)
    texture /= max(texture.std(), 1e-6)
    out = img.copy()
    # The tissue the tumour displaces: brain within 8 mm outside the outline, before edema.
    around = brain & ~mask & (r <= big_r + 8.0)
    local_tissue = float(np.median(img[around])) if around.sum() >= 10 else None
    if spec.edema:
        # A band of 0.5-0.9 radii plus 3-6 mm around the outline, with a 2-pixel soft edge.
        extent = big_r * rng.uniform(0.5, 0.9) * (1 + 0.15 * np.cos(3 * theta + rng.uniform(0, 6)))
        extent += rng.uniform(3.0, 6.0)
        ed = np.clip((big_r + extent - r) / (2 * spacing), 0, 1) * brain
        out = out * (1 - 0.3 * ed)  # vasogenic edema is hypointense on T1
    tissue = out[brain & ~mask]
    background = float(np.median(tissue)) if tissue.size else 0.6
    rel = np.clip(r / np.maximum(big_r, 1e-6), 0, 1)  # 0 at centre, 1 on the outline
    if spec.intensity == "hyperintense":
        value = 0.93 + 0.03 * texture
    elif spec.intensity == "hypointense":
        value = 0.24 + 0.04 * texture
    elif spec.intensity == "isointense":
        # Same signal as the brain tissue around it (before edema); visible by its mottled texture and a
        # darker capsule, as isointense masses are on real scans. Both are strong enough
        # that a small isointense tumour is still visible at 128 px, so the ground truth
        # never asks a captioner or judge to find what the image does not show.
        capsule = np.clip((rel - 0.75) / 0.12, 0, 1)
        level = background if local_tissue is None else local_tissue
        value = level + 0.16 * texture - 0.16 * capsule
    elif spec.intensity == "ring-enhancing":
        rim_px = max(1.6, 0.3 * spec.diameter_mm / 2 / spacing)  # rim at least 1.6 px thick
        rim_rel = min(0.6, rim_px * spacing / (spec.diameter_mm / 2))
        rim = np.clip((rel - (1 - rim_rel)) / 0.1, 0, 1)
        value = (0.26 + 0.04 * texture) * (1 - rim) + (0.96 + 0.02 * texture) * rim
    else:
        raise ValueError(f"unknown tumour intensity {spec.intensity!r}")
    out = out * (1 - alpha) + np.clip(value, 0, 1) * alpha
    return out.astype(np.float32), mask
