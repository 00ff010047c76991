"""Lesion masks drawn from the phantom's tumour model for requested findings.

Mask-conditioned generation needs, for each requested finding, a mask a real scan with that
finding could have: :func:`lesion_mask_for` draws a phantom head and slice level, places a
tumour of the requested hemisphere, lobe region, size, shape and orientation exactly as
``synthmed data phantom`` places its tumours (same tumour model, same placement rules, so
the lesion lies inside the brain outline, clear of the midline and the surface), and
returns its mask. Attributes the finding leaves open are drawn. Same finding and seed,
same mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthmed.data.head_mask import head_mask
from synthmed.data.phantom.anatomy import (
    FIELD_OF_VIEW_MM,
    apply_scanner,
    forward_point,
    head_slice,
    inverse_map,
    load_template,
    sample_head,
)
from synthmed.data.phantom.generator import place_tumour
from synthmed.data.phantom.tumour import (
    ORIENTATION_ANGLES_DEG,
    SIZE_RANGES_MM,
    TumourSpec,
    mass_effect_coords,
    max_radius_mm,
    sample_tumour,
    tumour_mask,
)
from synthmed.errors import ConfigError
from synthmed.findings.brain_regions import lobe_for
from synthmed.findings.schema import HEMISPHERES, INTENSITIES, LOBES, SHAPES, SIZE_CATEGORIES, BrainMRIFindings

#: Head and slice draws tried before a finding is declared impossible to place.
_PLACEMENT_TRIES = 60


@dataclass(frozen=True)
class LesionLayout:
    """A drawn lesion and the anatomy it sits in.

    Attributes:
        lesion: (S, S) bool lesion mask (empty for a healthy finding).
        brain: (S, S) bool brain outline of the drawn head and slice.
        head: (S, S) bool head outline (scalp included) of that slice as rendered by the phantom,
            found as :func:`synthmed.data.head_mask.head_mask` finds it in any image.
        z_level: MNI slice index of the drawn slice.
        hemisphere, lobe: Where the lesion is (None when healthy); ``lobe`` is the region of its centre.
        size_mm: Its largest diameter (None when healthy).
    """

    lesion: np.ndarray
    brain: np.ndarray
    head: np.ndarray
    z_level: int
    hemisphere: str | None = None
    lobe: str | None = None
    size_mm: float | None = None


def _diameter_range(findings: BrainMRIFindings) -> tuple[float, float]:
    if findings.size_mm is not None:
        return float(findings.size_mm), float(findings.size_mm)
    return SIZE_RANGES_MM[findings.size_category] if findings.size_category else SIZE_RANGES_MM["medium"]


def _tumour_for(findings: BrainMRIFindings, rng: np.random.Generator) -> TumourSpec:
    """The tumour model's draw for ``findings``, with the requested size and orientation imposed."""
    category = findings.size_category or str(rng.choice(SIZE_CATEGORIES))
    spec = sample_tumour(rng, size_category=category, shape=findings.shape or str(rng.choice(SHAPES)),
                         intensity=findings.intensity or str(rng.choice(INTENSITIES)),
                         edema=bool(findings.edema), mass_effect=bool(findings.mass_effect))
    if findings.size_mm is not None:
        spec = dataclasses.replace(spec, diameter_mm=float(findings.size_mm))
    if findings.orientation is not None and spec.shape != "round":
        angle = float(rng.choice(ORIENTATION_ANGLES_DEG[findings.orientation]) + rng.uniform(-12, 12))
        spec = dataclasses.replace(spec, orientation=findings.orientation, angle_deg=angle)
    return spec


def _rendered_head(tpl, zi: int, head, coords: np.ndarray, seed: int) -> np.ndarray:
    """The head outline of the slice the phantom renders for this head, level and mapping (no lesion).

    Rendered with its own random stream, so the layout's other draws do not depend on it.
    """
    rng = np.random.default_rng([seed, 25])
    img = ndimage.map_coordinates(head_slice(tpl, zi, head, rng), coords, order=1, cval=0.0)
    return head_mask(apply_scanner(img, head, rng))


def lesion_layout(findings: BrainMRIFindings, *, size: int, seed: int) -> LesionLayout:
    """Draw a head, a slice and (for a tumour finding) a lesion placed as the phantom places them.

    Args:
        findings: What the image should show; open attributes are drawn.
        size: Image side in pixels (field of view 220 mm, as the phantom).
        seed: Seed of every draw.

    Raises:
        ConfigError: no head and slice of the phantom has room for the requested lesion.
    """
    tpl = load_template()
    rng = np.random.default_rng([seed, 24])
    spacing = FIELD_OF_VIEW_MM / size
    for _ in range(_PLACEMENT_TRIES):
        head = sample_head(rng)
        zi = int(rng.integers(len(tpl.z_levels)))
        coords = inverse_map(tpl, head, size)
        if not findings.tumor_present:
            brain = ndimage.map_coordinates(tpl.brain[zi].astype(np.float32), coords, order=1, cval=0.0) > 0.5
            return LesionLayout(np.zeros((size, size), bool), brain, _rendered_head(tpl, zi, head, coords, seed),
                                int(tpl.z_levels[zi]))
        hemisphere = findings.hemisphere or str(rng.choice(HEMISPHERES))
        lobe = findings.lobe or str(rng.choice(LOBES))
        spec = _tumour_for(findings, rng)
        placed = place_tumour(tpl, zi, hemisphere, lobe, spec, head, rng)
        if placed is None:
            continue
        centre = forward_point(coords, placed[:2])
        if spec.mass_effect:
            coords = mass_effect_coords(coords, centre, max_radius_mm(spec) / spacing)
        brain = ndimage.map_coordinates(tpl.brain[zi].astype(np.float32), coords, order=1, cval=0.0) > 0.5
        lesion = tumour_mask(size, spec, centre, spacing)
        return LesionLayout(lesion, brain | lesion, _rendered_head(tpl, zi, head, coords, seed),
                            int(tpl.z_levels[zi]), hemisphere,
                            lobe_for(placed[2], placed[3]), spec.diameter_mm)
    raise ConfigError(f"cannot place a lesion for {findings.model_dump(exclude_none=True)} in {_PLACEMENT_TRIES} "
                      f"phantom slices (seed {seed}); a {_diameter_range(findings)[1]:.0f} mm lesion may not fit that "
                      "lobe region")


def lesion_mask_for(findings: BrainMRIFindings, *, size: int, seed: int) -> np.ndarray:
    """(size, size) bool lesion mask for ``findings`` (:func:`lesion_layout`); empty when healthy."""
    return lesion_layout(findings, size=size, seed=seed).lesion
