"""The Localise tab's work: an upload (PNG, JPEG, DICOM, NIfTI) -> slices -> anomaly map, findings, explanations."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthmed.app.models import AppModels
from synthmed.errors import DataError

_PICTURES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".dcm"):
        return "dicom"
    if name.endswith(_PICTURES):
        return "picture"
    with path.open("rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        return "dicom"
    raise DataError("not a scan this app reads: upload a PNG, JPEG, TIFF, DICOM (.dcm) or NIfTI (.nii, .nii.gz) file",
                    path)


def read_scan(path: str | Path) -> list[np.ndarray]:
    """The slices of an uploaded scan, as stored images ((H, W) uint8/uint16 or (H, W, 3) uint8).

    A picture is one slice; DICOM and NIfTI go through ``synthmed data import`` (the file's own
    window for DICOM, percentile windowing for NIfTI; a volume gives its axial slices).

    Raises:
        DataError: naming the file when it cannot be read.
    """
    from synthmed.data.dataset import ImageDataset
    from synthmed.data.imageio import load_image
    from synthmed.data.importers.core import import_dataset

    path = Path(path)
    if not path.is_file():
        raise DataError("uploaded file not found", path)
    fmt = _format_of(path)
    if fmt == "picture":
        return [load_image(path)]
    tmp = Path(tempfile.mkdtemp(prefix="synthmed-upload-"))
    try:
        (tmp / "src").mkdir()
        shutil.copy(path, tmp / "src" / path.name)
        options = {"windowing": "percentile"} if fmt == "nifti" else {}
        try:
            import_dataset(fmt, tmp / "src", tmp / "out", strict=True, progress=False, **options)
        except DataError as err:
            raise DataError(f"cannot read this {fmt.upper()} file: {err}", path) from err
        ds = ImageDataset(tmp / "out")
        slices = [ds.image(r) for r in ds]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not slices:
        raise DataError(f"this {fmt.upper()} file holds no image", path)
    return slices


@dataclass
class Localisation:
    """The localiser's answer for one slice, ready to show."""

    heatmap: np.ndarray
    overlay: np.ndarray
    image_score: float
    threshold: float
    findings: dict | None
    findings_text: str


def localize_slice(models: AppModels, image: np.ndarray) -> Localisation:
    """Anomaly map, red-region overlay, image score and the findings read from the region of one slice."""
    from synthmed.caption.base import CaptionInput
    from synthmed.caption.mask import MaskCaptioner
    from synthmed.explain.run import localizer_text
    from synthmed.localize.overlay import heatmap_overlay, red_region_overlay

    localizer = models.localizer()
    (res,) = localizer.predict([image])
    threshold = localizer.config.threshold
    region = res.anomaly_map >= threshold
    cap = MaskCaptioner().caption_one(CaptionInput("upload", image, region, None))
    findings = cap.findings.model_dump(mode="json") if cap.findings else None
    return Localisation(heatmap_overlay(image, res.anomaly_map), red_region_overlay(image, region),
                        float(res.image_score), float(threshold), findings, localizer_text(findings))


def explain_slice(models: AppModels, image: np.ndarray, loc: Localisation) -> dict[str, str]:
    """The VLM's explanation in each prompting mode (zero-shot, instruction, chain-of-thought), as text."""
    from synthmed.explain.prompts import MODES
    from synthmed.explain.run import explain_image
    from synthmed.viz import to_rgb8

    results = explain_image(models.chat(), to_rgb8(image), loc.overlay, loc.findings, list(MODES))
    out = {}
    for mode, r in results.items():
        if r.get("error") and not r.get("explanation"):
            out[mode] = f"(no usable answer: {r['error']})"
        else:
            found = r.get("findings")
            out[mode] = (r.get("explanation") or "").strip() + (f"\n\nFindings: {found}" if found else "")
    return out
