"""The ``mask`` captioner: findings from a lesion mask and the image alone.

* presence — the mask has at least ``min_lesion_px`` pixels (an image without a mask is an
  error, not a healthy image);
* hemisphere — the side of the brain midline (long principal axis of the estimated brain
  mask) that holds most of the lesion, in the radiological convention;
* lobe — the region of the lesion centroid in brain-normalised coordinates
  (:mod:`synthmed.findings.brain_regions`);
* size — the largest diameter of the mask times the pixel spacing (when the image has no
  spacing, it is estimated from the brain's anterior–posterior length, 165 mm);
* shape — irregular when the outline has strong high-order harmonics (>= 6) or a low
  solidity (area / convex hull), lobulated when harmonics 3-5 are strong, otherwise round
  or oval by elongation (ratio of principal moments);
* intensity — lesion vs surrounding brain signal; ring enhancement from rim vs core;
* orientation — the long principal axis of the lesion in the image;
* edema — a hypointense band around the lesion relative to the rest of the brain.

Mass effect is not estimated (left unset): it cannot be read reliably from one slice's
mask without a reference anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthmed.caption.base import CaptionInput, CaptionResult, register_captioner
from synthmed.caption.brain_geometry import TYPICAL_BRAIN_LENGTH_MM, BrainFrame, brain_mask, lesion_shape
from synthmed.data.imageio import to_float01
from synthmed.findings.brain_regions import hemisphere_for, lobe_for
from synthmed.findings.schema import BrainMRIFindings, GenericFindings
from synthmed.utils.configs import error_text


@dataclass(frozen=True)
class MaskCaptionerConfig:
    """Decision thresholds of the mask captioner (calibrated on the phantom, documented)."""

    min_lesion_px: int = 4
    round_max_elongation: float = 1.25
    lobulated_min_lobulation: float = 0.062
    irregular_min_roughness: float = 0.052
    irregular_max_solidity: float = 0.82
    hyper_min_ratio: float = 1.18
    hypo_max_ratio: float = 0.72
    ring_min_contrast: float = 0.3
    edema_max_ratio: float = 0.89
    orientation_tolerance_deg: float = 22.5


class MaskCaptioner:
    """Derives brain-MRI findings from each image's lesion mask (see module docstring)."""

    name = "mask"

    def __init__(self, config: MaskCaptionerConfig | None = None):
        self.config = config or MaskCaptionerConfig()

    def caption(self, items: Sequence[CaptionInput]) -> list[CaptionResult]:
        return [self.caption_one(item) for item in items]

    def caption_one(self, item: CaptionInput) -> CaptionResult:
        if item.modality != "brain_mri":
            if item.mask is None:
                return CaptionResult(item.key, None, error="no mask: the mask captioner needs a lesion mask")
            present = bool(item.mask.sum() >= self.config.min_lesion_px)
            return CaptionResult(item.key, GenericFindings(abnormal=present), raw=None)
        try:
            findings, raw = self._brain(item)
        except ValueError as err:  # findings out of range among them, e.g. a mask that covers the whole image
            return CaptionResult(item.key, None, raw=None, error=error_text(err, subject="findings"))
        return CaptionResult(item.key, findings, raw=raw)

    def _brain(self, item: CaptionInput) -> tuple[BrainMRIFindings, str]:
        cfg = self.config
        mask = item.mask
        if mask is None:
            raise ValueError("no mask: the mask captioner needs a lesion mask per image "
                             "(an empty mask means no lesion)")
        if mask.sum() < cfg.min_lesion_px:
            return BrainMRIFindings(tumor_present=False), "no lesion pixels"
        image = item.image if item.image.ndim == 2 else item.image.mean(axis=-1).astype(item.image.dtype)
        img01 = to_float01(image)
        brain = brain_mask(img01, lesion=mask)
        frame = BrainFrame.from_mask(brain)
        # Work on the largest connected lesion component for the outline measures.
        labels, n = ndimage.label(mask)
        if n > 1:
            sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
            mask = labels == (int(np.argmax(sizes)) + 1)
        shape = lesion_shape(mask)

        lesion_pts = np.argwhere(mask).astype(np.float64) - frame.centre
        right_fraction = float(((lesion_pts @ frame.lr_axis) > 0).mean())
        image_side = "right" if right_fraction >= 0.5 else "left"
        u, v, _ = frame.normalised(shape.centroid)

        spacing = item.spacing_mm or TYPICAL_BRAIN_LENGTH_MM / max(frame.ap_length_px(), 1.0)
        size_mm = round(shape.max_feret_px * spacing, 1)

        if shape.roughness >= cfg.irregular_min_roughness or shape.solidity < cfg.irregular_max_solidity:
            shape_name = "irregular"
        elif shape.lobulation >= cfg.lobulated_min_lobulation:
            shape_name = "lobulated"
        elif shape.elongation < cfg.round_max_elongation:
            shape_name = "round"
        else:
            shape_name = "oval"

        orientation = None if shape_name == "round" else _orientation(shape.angle_deg, cfg.orientation_tolerance_deg)
        intensity, edema, stats = _signal(img01, brain, mask, frame, cfg)
        findings = BrainMRIFindings(
            tumor_present=True, hemisphere=hemisphere_for(image_side), lobe=lobe_for(u, v), size_mm=size_mm,
            shape=shape_name, intensity=intensity, orientation=orientation, edema=edema)
        raw = (f"u={u:.3f} v={v:.3f} right_fraction={right_fraction:.2f} feret_px={shape.max_feret_px:.2f} "
               f"spacing={spacing:.3f} elongation={shape.elongation:.3f} solidity={shape.solidity:.3f} "
               f"lobulation={shape.lobulation:.3f} roughness={shape.roughness:.3f} angle={shape.angle_deg:.1f} {stats}")
        return findings, raw


def _orientation(angle_deg: float, tol: float) -> str:
    a = angle_deg % 180.0
    if min(a, 180.0 - a) <= tol:
        return "horizontal"
    if abs(a - 90.0) <= tol:
        return "vertical"
    return "oblique"


def _band_vs_mirror(img: np.ndarray, brain: np.ndarray, lesion: np.ndarray, frame: BrainFrame) -> float:
    """Median signal of a 3-px band around the lesion over the same band mirrored across the midline.

    The contralateral hemisphere has the same anatomy, so a ratio well below 1 means the
    tissue around the lesion is darker than it should be: T1-hypointense edema.
    """
    near = ndimage.binary_dilation(lesion, iterations=3) & ~lesion & brain
    if not near.any():
        return 1.0
    pts = np.argwhere(near).astype(np.float64)
    lateral = (pts - frame.centre) @ frame.lr_axis
    mirrored = pts - 2.0 * lateral[:, None] * frame.lr_axis[None, :]
    contra = ndimage.map_coordinates(img, mirrored.T, order=1, mode="nearest")
    return float(np.median(img[near])) / max(float(np.median(contra)), 1e-3)


def _signal(img: np.ndarray, brain: np.ndarray, lesion: np.ndarray, frame: BrainFrame,
            cfg: MaskCaptionerConfig) -> tuple[str, bool, str]:
    """Intensity class, edema, and the measured ratios (for the raw record)."""
    far = brain & ~ndimage.binary_dilation(lesion, iterations=8)
    reference = float(np.median(img[far])) if far.sum() > 20 else float(np.median(img[brain & ~lesion]))
    reference = max(reference, 1e-3)
    depth = ndimage.distance_transform_edt(lesion)
    rim = lesion & (depth <= 1.5)
    core = lesion & (depth >= max(2.0, 0.5 * depth.max()))
    lesion_ratio = float(img[lesion].mean()) / reference
    rim_ratio = float(img[rim].mean()) / reference if rim.any() else lesion_ratio
    core_ratio = float(img[core].mean()) / reference if core.any() else lesion_ratio
    if core.any() and rim_ratio - core_ratio >= cfg.ring_min_contrast and rim_ratio > 1.0:
        intensity = "ring-enhancing"
    elif lesion_ratio >= cfg.hyper_min_ratio:
        intensity = "hyperintense"
    elif lesion_ratio <= cfg.hypo_max_ratio:
        intensity = "hypointense"
    else:
        intensity = "isointense"
    near_ratio = _band_vs_mirror(img, brain, lesion, frame)
    edema = near_ratio <= cfg.edema_max_ratio
    stats = (f"lesion_ratio={lesion_ratio:.3f} rim_ratio={rim_ratio:.3f} core_ratio={core_ratio:.3f} "
             f"near_ratio={near_ratio:.3f}")
    return intensity, edema, stats


@register_captioner("mask")
def _make_mask_captioner(**options: object) -> MaskCaptioner:
    if "model" in options:
        raise ValueError("the mask captioner takes no model (use 'mask', not 'mask:...')")
    return MaskCaptioner(MaskCaptionerConfig(**options))  # type: ignore[arg-type]
