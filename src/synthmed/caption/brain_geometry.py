"""Geometry of an axial brain slice from its pixels: brain mask, midline frame, lesion shape.

Used by the mask captioner (and by the localiser to turn a heat map into findings). The
estimates need no atlas: the brain is the largest bright connected region inside the
skull, its long principal axis is the anterior–posterior midline, and positions are
expressed in the brain-normalised coordinates of :mod:`synthmed.findings.brain_regions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import find_contours
from skimage.morphology import convex_hull_image

#: Typical anterior–posterior length of an adult brain in an axial slice, used to guess the
#: pixel spacing when an image carries none.
TYPICAL_BRAIN_LENGTH_MM = 165.0


def brain_mask(image01: np.ndarray, lesion: np.ndarray | None = None) -> np.ndarray:
    """Estimate the brain mask of a skull-on axial slice.

    Args:
        image01: (H, W) float image in [0, 1].
        lesion: Optional lesion mask, added to the brain (dark lesions at the surface).

    Returns:
        (H, W) bool mask, holes filled.
    """
    smooth = ndimage.gaussian_filter(image01, 0.7)
    t = threshold_otsu(smooth)
    fg = smooth > 0.55 * t
    # The dark skull separates brain from scalp; erode to cut thin bridges, keep the biggest blob.
    core = ndimage.binary_erosion(fg, iterations=2)
    labels, n = ndimage.label(core)
    if n == 0:
        return np.zeros_like(fg)
    sizes = ndimage.sum(core, labels, index=np.arange(1, n + 1))
    brain = labels == (int(np.argmax(sizes)) + 1)
    brain = ndimage.binary_dilation(brain, iterations=2) & fg
    if lesion is not None:
        brain |= lesion
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(brain, iterations=2))
    return brain


@dataclass(frozen=True)
class BrainFrame:
    """The brain's own axes in an image.

    Attributes:
        centre: (row, col) centroid of the brain mask.
        ap_axis: unit (drow, dcol) vector from anterior to posterior.
        lr_axis: unit (drow, dcol) vector towards the image's right (the patient's left).
        ap_range: (min, max) of brain pixels along ``ap_axis`` relative to ``centre``.
    """

    centre: np.ndarray
    ap_axis: np.ndarray
    lr_axis: np.ndarray
    ap_range: tuple[float, float]
    brain: np.ndarray

    @classmethod
    def from_mask(cls, brain: np.ndarray) -> BrainFrame:
        """Principal axes of the brain mask; the long axis is anterior–posterior."""
        pts = np.argwhere(brain).astype(np.float64)
        if len(pts) < 20:
            raise ValueError("brain mask is too small to define a frame")
        centre = pts.mean(axis=0)
        cov = np.cov((pts - centre).T)
        evals, evecs = np.linalg.eigh(cov)
        ap = evecs[:, int(np.argmax(evals))]
        if ap[0] < 0:  # point down the image: anterior is at the top
            ap = -ap
        lr = np.array([-ap[1], ap[0]])
        if lr[1] < 0:
            lr = -lr
        along = (pts - centre) @ ap
        return cls(centre, ap, lr, (float(along.min()), float(along.max())), brain)

    def normalised(self, point: np.ndarray) -> tuple[float, float, float]:
        """(u, v, signed lateral offset in px) of an image point (row, col).

        ``u`` runs 0 (anterior) -> 1 (posterior); ``v`` is the distance from the midline
        over the brain half-width on that side at the same AP level; the signed offset is
        positive on the image's right.
        """
        d = np.asarray(point, dtype=np.float64) - self.centre
        a, lat = float(d @ self.ap_axis), float(d @ self.lr_axis)
        lo, hi = self.ap_range
        u = (a - lo) / max(hi - lo, 1e-6)
        pts = np.argwhere(self.brain).astype(np.float64) - self.centre
        along, across = pts @ self.ap_axis, pts @ self.lr_axis
        band = np.abs(along - a) <= 1.5
        side = across[band & (np.sign(across) == (1 if lat >= 0 else -1))]
        half = float(np.abs(side).max()) if side.size else max(abs(lat), 1.0)
        return float(np.clip(u, 0, 1)), float(np.clip(abs(lat) / max(half, 1e-6), 0, 1)), lat

    def ap_length_px(self) -> float:
        """Anterior–posterior length of the brain in pixels."""
        return self.ap_range[1] - self.ap_range[0]


@dataclass(frozen=True)
class LesionShape:
    """Shape descriptors of a binary lesion mask (pixel units)."""

    area_px: float
    centroid: np.ndarray
    max_feret_px: float
    elongation: float  # sqrt of the ratio of principal second moments (1 = isotropic)
    angle_deg: float  # long-axis angle, counter-clockwise from the image x axis, in [0, 180)
    solidity: float  # area / convex-hull area
    lobulation: float  # energy of boundary-radius harmonics 3-5, relative to the mean radius
    roughness: float  # energy of boundary-radius harmonics >= 6, relative to the mean radius


def lesion_shape(mask: np.ndarray) -> LesionShape:
    """Measure a lesion mask (largest connected component is used for the outline)."""
    pts = np.argwhere(mask).astype(np.float64)
    centroid = pts.mean(axis=0)
    d = pts - centroid
    cov = d.T @ d / len(pts) + np.eye(2) / 12.0  # + pixel-area variance
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1]
    elongation = float(np.sqrt(evals[1] / max(evals[0], 1e-9)))
    angle = float(np.degrees(np.arctan2(-major[0], major[1]))) % 180.0  # y up on screen
    hull = convex_hull_image(mask)
    solidity = float(mask.sum() / max(hull.sum(), 1))
    max_feret = _max_feret(mask)
    lobulation, roughness = _boundary_spectrum(mask, centroid)
    return LesionShape(float(mask.sum()), centroid, max_feret, elongation, angle, solidity, lobulation, roughness)


def _max_feret(mask: np.ndarray) -> float:
    """Largest extent of the mask in pixels (pixel-centre distance plus a sub-pixel correction)."""
    pts = np.argwhere(mask).astype(np.float64)
    if len(pts) > 400:  # the extremes lie on the hull; the boundary is enough
        boundary = mask & ~ndimage.binary_erosion(mask)
        pts = np.argwhere(boundary).astype(np.float64)
    dmax = 0.0
    for i in range(0, len(pts), 256):
        block = pts[i:i + 256]
        dmax = max(dmax, float(np.sqrt(((block[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max()))
    return dmax + 0.65  # centre-to-centre underestimates the outline by ~2/3 px (phantom-calibrated)


def _boundary_spectrum(mask: np.ndarray, centroid: np.ndarray) -> tuple[float, float]:
    """Relative energies of the boundary radius r(θ) in harmonics 3-5 and >= 6."""
    padded = np.pad(mask.astype(float), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        return 0.0, 0.0
    c = max(contours, key=len) - 1.0
    rel = c - centroid
    theta = np.arctan2(rel[:, 0], rel[:, 1])
    radius = np.hypot(rel[:, 0], rel[:, 1])
    order = np.argsort(theta)
    grid = np.linspace(-np.pi, np.pi, 128, endpoint=False)
    r = np.interp(grid, theta[order], radius[order], period=2 * np.pi)
    spectrum = np.abs(np.fft.rfft(r)) / len(r)
    mean_r = max(spectrum[0], 1e-6)
    return (float(np.sqrt((spectrum[3:6] ** 2).sum()) / mean_r),
            float(np.sqrt((spectrum[6:] ** 2).sum()) / mean_r))
