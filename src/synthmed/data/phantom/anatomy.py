"""Base anatomy of the phantom: MNI152 axial slices, warped per patient, with a skull/scalp ring.

The MNI152 T1 template shipped by nilearn (1 mm isotropic, skull-stripped, values in
[0, 1]) is the only real brain available offline. Every phantom patient gets its own
random affine and elastic warp of it, so slices of one patient share a head shape and
slices of different patients differ — which is what makes patient-level splits matter.

Template slices are stored in the radiological display orientation: rows run from
anterior (top) to posterior, columns from the patient's right (image left) to the
patient's left (image right).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

#: Axial template levels (voxel index along MNI z) used by the phantom: from the basal
#: ganglia to the centrum semiovale, where slices look like the typical clinical tumour slice.
Z_RANGE = (62, 113)
#: Field of view of every phantom image, in mm (square).
FIELD_OF_VIEW_MM = 220.0


@dataclass(frozen=True)
class TemplateSlices:
    """Axial MNI152 slices in display orientation.

    Attributes:
        head: (Z, H, W) float32 — brain template plus a generic CSF/skull/scalp ring, [0, 1].
        brain: (Z, H, W) bool brain masks.
        scalp_distance: (Z, H, W) float32 distance (mm) outside the brain mask, used to
            vary skull and scalp thickness per patient.
        z_levels: the MNI voxel index of each slice.
        midline_col: column of the mid-sagittal plane (MNI x = 0).
    """

    head: np.ndarray
    brain: np.ndarray
    scalp_distance: np.ndarray
    z_levels: np.ndarray
    midline_col: float


@lru_cache(maxsize=1)
def load_template() -> TemplateSlices:
    """Load and orient the MNI152 slices once per process (about 2 s)."""
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    t1 = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float32)
    mask = np.asarray(load_mni152_brain_mask(resolution=1).get_fdata()) > 0.5
    z = np.arange(*Z_RANGE)
    # (x, y, z) -> (z, rows=y reversed (anterior on top), cols=x reversed (patient right on image left))
    brain_img = np.transpose(t1[:, :, z], (2, 1, 0))[:, ::-1, ::-1]
    brain = np.transpose(mask[:, :, z], (2, 1, 0))[:, ::-1, ::-1]
    brain = np.stack([ndimage.binary_fill_holes(ndimage.binary_opening(b, iterations=1)) for b in brain])
    brain_img = np.where(brain, brain_img, 0.0).astype(np.float32)
    dist = np.stack([ndimage.distance_transform_edt(~b) for b in brain]).astype(np.float32)
    x_index_of_midline = -t1_affine_origin_x()
    midline_col = float(t1.shape[0] - 1 - x_index_of_midline)
    return TemplateSlices(np.ascontiguousarray(brain_img), np.ascontiguousarray(brain),
                          np.ascontiguousarray(dist), z, midline_col)


def t1_affine_origin_x() -> float:
    """The MNI x coordinate (mm) of voxel index 0 in the 1 mm template (-98)."""
    from nilearn.datasets import load_mni152_template

    return float(load_mni152_template(resolution=1).affine[0, 3])


@dataclass(frozen=True)
class HeadParams:
    """Per-patient geometry and scanner appearance."""

    rotation_deg: float
    scale: tuple[float, float]  # (rows, cols) zoom of the head in the image
    shift_mm: tuple[float, float]
    elastic_seed: int
    elastic_mm: float
    skull_mm: float
    scalp_mm: float
    scalp_level: float
    gamma: float
    contrast: float
    bias: tuple[float, float, float, float, float]  # coefficients of a quadratic log-bias field
    noise_sigma: float


def sample_head(rng: np.random.Generator) -> HeadParams:
    """Draw one patient's head shape and scanner appearance."""
    s = rng.uniform(0.9, 1.08)
    return HeadParams(
        rotation_deg=float(rng.uniform(-10, 10)),
        scale=(float(s * rng.uniform(0.96, 1.04)), float(s * rng.uniform(0.96, 1.04))),
        shift_mm=(float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6))),
        elastic_seed=int(rng.integers(2**31)),
        elastic_mm=float(rng.uniform(1.0, 3.5)),
        skull_mm=float(rng.uniform(3.5, 6.5)),
        scalp_mm=float(rng.uniform(4.0, 8.0)),
        scalp_level=float(rng.uniform(0.65, 0.9)),
        gamma=float(rng.uniform(0.8, 1.25)),
        contrast=float(rng.uniform(0.85, 1.1)),
        bias=tuple(float(x) for x in rng.normal(0, [0.08, 0.08, 0.05, 0.05, 0.04])),  # type: ignore[arg-type]
        noise_sigma=float(rng.uniform(0.008, 0.035)),
    )


def head_slice(tpl: TemplateSlices, index: int, head: HeadParams, rng: np.random.Generator) -> np.ndarray:
    """The template slice ``index`` with this patient's skull and scalp, in template space."""
    d = tpl.scalp_distance[index]
    img = tpl.head[index] * 0.82  # leave headroom above white matter for enhancing lesions
    csf = 1.2
    skull_end = csf + head.skull_mm
    scalp_end = skull_end + head.scalp_mm
    texture = ndimage.gaussian_filter(rng.normal(0, 1, d.shape), 2.0).astype(np.float32)
    skull = (d > csf) & (d <= skull_end)
    scalp = (d > skull_end) & (d <= scalp_end)
    img[(d > 0) & (d <= csf)] = 0.08
    img[skull] = 0.06 + 0.03 * texture[skull]
    img[scalp] = head.scalp_level + 0.06 * texture[scalp]
    # Soft outer edge of the scalp.
    edge = (d > scalp_end) & (d <= scalp_end + 1.5)
    img[edge] = head.scalp_level * 0.4
    return np.clip(img, 0, 1)


def inverse_map(tpl: TemplateSlices, head: HeadParams, size: int) -> np.ndarray:
    """Template (row, col) coordinates sampled by each output pixel.

    Output pixel p (in mm from the image centre) looks up the template at
    ``c_t + A^-1 (p - shift) + elastic(p)``, where A rotates and zooms.

    Returns:
        (2, size, size) float32 array of template coordinates.
    """
    spacing = FIELD_OF_VIEW_MM / size
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    py = (rows - (size - 1) / 2) * spacing - head.shift_mm[0]
    px = (cols - (size - 1) / 2) * spacing - head.shift_mm[1]
    th = np.deg2rad(head.rotation_deg)
    cos, sin = np.cos(th), np.sin(th)
    ty = (cos * py + sin * px) / head.scale[0]
    tx = (-sin * py + cos * px) / head.scale[1]
    erng = np.random.default_rng(head.elastic_seed)
    coarse = erng.normal(0, 1, (2, 6, 6))
    field = np.stack([ndimage.zoom(c, size / 6, order=3)[:size, :size] for c in coarse])
    field *= head.elastic_mm / max(field.std(), 1e-6)
    centre_row = (tpl.head.shape[1] - 1) / 2 + 0.0
    coords = np.stack([centre_row + ty + field[0], tpl.midline_col + tx + field[1]])
    return coords.astype(np.float32)


def forward_point(coords: np.ndarray, target: tuple[float, float]) -> tuple[float, float]:
    """The output pixel (row, col) whose template coordinates are ``target`` (sub-pixel).

    Inverts :func:`inverse_map` numerically: nearest grid point, then Newton steps with
    the local Jacobian.
    """
    d2 = (coords[0] - target[0]) ** 2 + (coords[1] - target[1]) ** 2
    r, c = np.unravel_index(int(np.argmin(d2)), d2.shape)
    p = np.array([r, c], dtype=np.float64)
    for _ in range(3):
        q = np.array([ndimage.map_coordinates(coords[i], p[:, None], order=1, mode="nearest")[0] for i in (0, 1)])
        jac = np.empty((2, 2))
        for j in range(2):
            step = np.zeros(2)
            step[j] = 0.5
            qa = [ndimage.map_coordinates(coords[i], (p + step)[:, None], order=1, mode="nearest")[0] for i in (0, 1)]
            jac[:, j] = (np.array(qa) - q) / 0.5
        try:
            p = p + np.linalg.solve(jac, np.asarray(target) - q)
        except np.linalg.LinAlgError:
            break
    return float(p[0]), float(p[1])


def apply_scanner(img: np.ndarray, head: HeadParams, rng: np.random.Generator) -> np.ndarray:
    """Contrast, gamma, a smooth multiplicative bias field and Rician noise; returns [0, 1]."""
    size = img.shape[0]
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    b = head.bias
    bias = np.exp(b[0] * x + b[1] * y + b[2] * x * y + b[3] * x * x + b[4] * y * y)
    out = np.clip(img * head.contrast, 0, 1) ** head.gamma * bias
    n1 = rng.normal(0, head.noise_sigma, img.shape)
    n2 = rng.normal(0, head.noise_sigma, img.shape)
    out = np.sqrt((out + n1) ** 2 + n2**2)  # Rician magnitude noise
    return np.clip(out, 0, 1).astype(np.float32)
