"""Where a lesion is in an axial brain slice: hemisphere and lobe region.

Both the phantom generator (which knows the true anatomy) and the mask captioner (which
estimates it from the image) use these rules, so a location has one definition.

Coordinates are *brain-normalised*:

* ``u`` — position along the anterior–posterior axis of the brain in this slice:
  0 at the most anterior brain pixel, 1 at the most posterior.
* ``v`` — distance from the midline as a fraction of the brain's half-width at that
  anterior–posterior position: 0 on the midline, 1 at the lateral edge of the brain.

The lobe of an axial slice is approximated by the image region the lobe dominates at the
level of the lateral ventricles: frontal in front, occipital at the back, and between
them temporal laterally and parietal medially. This is an *image-region* definition, not
an atlas label; it is stated in the docs.
"""

from __future__ import annotations

#: Region boundaries in brain-normalised coordinates.
FRONTAL_MAX_U = 0.38
OCCIPITAL_MIN_U = 0.75
TEMPORAL_MIN_V = 0.6

#: (u_min, u_max, v_min, v_max) of each lobe region.
LOBE_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "frontal": (0.0, FRONTAL_MAX_U, 0.0, 1.0),
    "parietal": (FRONTAL_MAX_U, OCCIPITAL_MIN_U, 0.0, TEMPORAL_MIN_V),
    "temporal": (FRONTAL_MAX_U, OCCIPITAL_MIN_U, TEMPORAL_MIN_V, 1.0),
    "occipital": (OCCIPITAL_MIN_U, 1.0, 0.0, 1.0),
}


def lobe_for(u: float, v: float) -> str:
    """The lobe region of a point at brain-normalised coordinates (u, v)."""
    if u < FRONTAL_MAX_U:
        return "frontal"
    if u >= OCCIPITAL_MIN_U:
        return "occipital"
    return "temporal" if v >= TEMPORAL_MIN_V else "parietal"


def hemisphere_for(image_side: str) -> str:
    """Patient hemisphere of a point on the image's "left" or "right" half.

    Radiological display convention: the patient's left is on the image's right.
    """
    if image_side not in ("left", "right"):
        raise ValueError(f"image_side must be 'left' or 'right', got {image_side!r}")
    return "right" if image_side == "left" else "left"
