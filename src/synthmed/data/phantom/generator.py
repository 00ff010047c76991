"""``synthmed data phantom``: a brain-MRI benchmark with exact ground truth.

Each phantom *patient* has its own warped MNI152 head and scanner appearance and
contributes ``slices_per_patient`` axial slices at different levels. A tumour patient
has one tumour type (hemisphere, lobe region, shape, signal, edema, mass effect); the
size, exact position and orientation vary from slice to slice. Healthy patients have no
tumour. Splits are assigned per patient, stratified by tumour presence.

The output is an ordinary dataset directory whose rows carry the true findings and
their rendered prompt text. Deterministic for a seed, whatever the number of workers.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from synthmed.data.dataset import DatasetWriter
from synthmed.data.imageio import quantize
from synthmed.data.phantom.anatomy import (
    FIELD_OF_VIEW_MM,
    HeadParams,
    TemplateSlices,
    apply_scanner,
    forward_point,
    head_slice,
    inverse_map,
    load_template,
    sample_head,
)
from synthmed.data.phantom.tumour import (
    TumourSpec,
    mass_effect_coords,
    max_radius_mm,
    paint_tumour,
    sample_tumour,
)
from synthmed.errors import ConfigError
from synthmed.findings.brain_regions import LOBE_REGIONS, lobe_for
from synthmed.findings.render import render_text
from synthmed.findings.schema import HEMISPHERES, INTENSITIES, LOBES, SHAPES, SIZE_CATEGORIES, BrainMRIFindings
from synthmed.utils.outdir import first_argument, writes_to
from synthmed.utils.provenance import provenance, write_json_atomic

logger = logging.getLogger(__name__)

_REGION_MARGIN = 0.045  # keep centres this far (brain-normalised) from region boundaries


@dataclass
class PhantomConfig:
    """Settings of the phantom benchmark.

    Attributes:
        out: Output dataset directory.
        n: Number of slices.
        size: Image size in pixels (square); the field of view is 220 mm.
        seed: Random seed; the same seed gives the same dataset.
        tumor_fraction: Fraction of patients (hence of slices) with a tumour.
        slices_per_patient: Axial slices per patient.
        split_ratios: Train/val/test fractions of patients.
        workers: Processes (0 = one per CPU core).
    """

    out: Path
    n: int = 2000
    size: int = 128
    seed: int = 0
    tumor_fraction: float = 0.5
    slices_per_patient: int = 4
    split_ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    workers: int = 0
    hemispheres: tuple[str, ...] = field(default=HEMISPHERES)
    lobes: tuple[str, ...] = field(default=LOBES)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.n < 1:
            raise ConfigError(f"n must be at least 1, got {self.n}")
        if not 32 <= self.size <= 1024:
            raise ConfigError(f"size must be between 32 and 1024 pixels, got {self.size}")
        if not 0.0 <= self.tumor_fraction <= 1.0:
            raise ConfigError(f"tumor_fraction must be in [0, 1], got {self.tumor_fraction}")
        if self.slices_per_patient < 1:
            raise ConfigError(f"slices_per_patient must be at least 1, got {self.slices_per_patient}")
        if len(self.split_ratios) != 3 or any(r < 0 for r in self.split_ratios) or sum(self.split_ratios) <= 0:
            raise ConfigError(f"split_ratios must be three non-negative numbers, got {self.split_ratios}")
        for name, values, allowed in (("hemispheres", self.hemispheres, HEMISPHERES), ("lobes", self.lobes, LOBES)):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ConfigError(f"{name} must be a non-empty subset of {allowed}, got {values}")


@dataclass(frozen=True)
class _Patient:
    index: int
    patient_id: str
    n_slices: int
    has_tumour: bool
    split: str


@dataclass
class _Slice:
    name: str
    image: np.ndarray
    mask: np.ndarray
    findings: BrainMRIFindings
    z_level: int


def _plan_patients(cfg: PhantomConfig) -> list[_Patient]:
    n_patients = math.ceil(cfg.n / cfg.slices_per_patient)
    rng = np.random.default_rng([cfg.seed, 7919])
    n_tumour = int(round(cfg.tumor_fraction * n_patients))
    has_tumour = np.zeros(n_patients, bool)
    has_tumour[rng.permutation(n_patients)[:n_tumour]] = True
    splits = np.empty(n_patients, dtype=object)
    ratios = np.asarray(cfg.split_ratios, float) / sum(cfg.split_ratios)
    for group in (np.flatnonzero(has_tumour), np.flatnonzero(~has_tumour)):
        order = rng.permutation(group)
        cuts = np.round(np.cumsum(ratios)[:-1] * len(order)).astype(int)
        for name, part in zip(("train", "val", "test"), np.split(order, cuts), strict=True):
            splits[part] = name
    patients = []
    remaining = cfg.n
    for i in range(n_patients):
        k = min(cfg.slices_per_patient, remaining)
        remaining -= k
        patients.append(_Patient(i, f"P{i + 1:05d}", k, bool(has_tumour[i]), str(splits[i])))
    return patients


def _brain_extent(brain: np.ndarray, midline: float, row: int, side: str) -> float:
    cols = np.flatnonzero(brain[row])
    if cols.size == 0:
        return 0.0
    return float(cols.max() - midline) if side == "image_right" else float(midline - cols.min())


def place_tumour(tpl: TemplateSlices, z_index: int, hemisphere: str, lobe: str, spec: TumourSpec,
                  head: HeadParams, rng: np.random.Generator) -> tuple[float, float, float, float] | None:
    """A template-space centre (row, col) in the region, with room for the tumour; or None."""
    brain = tpl.brain[z_index]
    inside = ndimage.distance_transform_edt(brain)
    rows = np.flatnonzero(brain.any(axis=1))
    top, bottom = rows.min(), rows.max()
    side = "image_right" if hemisphere == "left" else "image_left"  # radiological convention
    u0, u1, v0, v1 = LOBE_REGIONS[lobe]
    radius = max_radius_mm(spec) / min(head.scale)
    need = radius * 1.08 + 1.5  # room to the brain surface
    need_midline = 0.6 * radius + 2.5  # the centre lies clearly in one hemisphere
    for _ in range(200):
        u = rng.uniform(u0 + _REGION_MARGIN, u1 - _REGION_MARGIN)
        v = rng.uniform(v0 + _REGION_MARGIN, v1 - _REGION_MARGIN)
        row = top + u * (bottom - top)
        half_width = _brain_extent(brain, tpl.midline_col, int(round(row)), side)
        if half_width < 10:
            continue
        col = tpl.midline_col + (v * half_width if side == "image_right" else -v * half_width)
        if (inside[int(round(row)), int(round(col))] >= need and abs(col - tpl.midline_col) >= need_midline
                and lobe_for(u, v) == lobe):
            return row, col, u, v
    return None


def _render_patient(args: tuple[PhantomConfig, _Patient]) -> list[_Slice]:
    cfg, patient = args
    tpl = load_template()
    rng = np.random.default_rng([cfg.seed, patient.index])
    head = sample_head(rng)
    spacing = FIELD_OF_VIEW_MM / cfg.size
    base_coords = inverse_map(tpl, head, cfg.size)
    z_indices = np.sort(rng.choice(len(tpl.z_levels), size=patient.n_slices, replace=False))
    kind = {
        "hemisphere": str(rng.choice(cfg.hemispheres)),
        "lobe": str(rng.choice(cfg.lobes)),
        "shape": str(rng.choice(SHAPES)),
        "intensity": str(rng.choice(INTENSITIES)),
        "edema": bool(rng.random() < 0.5),
        "mass_effect": bool(rng.random() < 0.4),
    }
    slices = []
    for k, zi in enumerate(z_indices):
        template_img = head_slice(tpl, int(zi), head, rng)
        coords = base_coords
        findings = BrainMRIFindings(tumor_present=False)
        spec = centre = None
        if patient.has_tumour:
            for category in reversed(SIZE_CATEGORIES[: SIZE_CATEGORIES.index(str(rng.choice(SIZE_CATEGORIES))) + 1]):
                spec = sample_tumour(rng, size_category=category, shape=kind["shape"], intensity=kind["intensity"],
                                     edema=kind["edema"], mass_effect=kind["mass_effect"])
                placed = place_tumour(tpl, int(zi), kind["hemisphere"], kind["lobe"], spec, head, rng)
                if placed is not None:
                    break
            else:  # pragma: no cover - the small size always fits
                raise RuntimeError(f"could not place a tumour for patient {patient.patient_id}")
            centre = forward_point(base_coords, placed[:2])
            if spec.mass_effect:
                coords = mass_effect_coords(base_coords, centre, max_radius_mm(spec) / spacing)
        img = ndimage.map_coordinates(template_img, coords, order=1, cval=0.0)
        brain = ndimage.map_coordinates(tpl.brain[zi].astype(np.float32), coords, order=1, cval=0.0) > 0.5
        mask = np.zeros(img.shape, bool)  # healthy slices get an empty mask: "no lesion", not "unknown"
        if spec is not None and centre is not None:
            img, mask = paint_tumour(img, brain, spec, centre, spacing)
            findings = BrainMRIFindings(
                tumor_present=True, hemisphere=kind["hemisphere"], lobe=lobe_for(placed[2], placed[3]),
                size_mm=round(spec.diameter_mm, 1), shape=spec.shape, intensity=spec.intensity,
                orientation=spec.orientation, edema=spec.edema, mass_effect=spec.mass_effect)
        img = apply_scanner(img, head, rng)
        slices.append(_Slice(_slice_name(patient, k), quantize(img, 8), mask,
                             findings, int(tpl.z_levels[zi])))
    return slices


@writes_to(first_argument("cfg", "out"))
def generate_phantom(cfg: PhantomConfig, *, progress: bool = True) -> Path:
    """Write the phantom benchmark to ``cfg.out`` and return the directory.

    A rerun into the same directory with the same settings skips patients already
    written, so an interrupted run can be resumed.
    """
    load_template()  # load once before forking workers
    patients = _plan_patients(cfg)
    writer = DatasetWriter(cfg.out)
    todo = [p for p in patients if not all(writer.has(n) for n in _expected_names(p))]
    if len(todo) < len(patients):
        logger.info("resuming: %d of %d patients already written", len(patients) - len(todo), len(patients))
    write_json_atomic(cfg.out / "synthmed.json", provenance(
        kind="phantom", config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}))
    workers = cfg.workers or (mp.cpu_count() or 1)
    jobs = [(cfg, p) for p in todo]
    bar = tqdm(total=sum(p.n_slices for p in todo), desc="phantom", unit="img", disable=not progress)
    pool = mp.get_context("fork").Pool(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.imap(_render_patient, jobs, chunksize=4) if pool else map(_render_patient, jobs)
        for patient, slices in zip(todo, results, strict=True):
            for s in slices:
                if writer.has(s.name):
                    continue
                writer.add(s.name, s.image, mask=s.mask, label="tumor" if s.findings.tumor_present else "no_tumor",
                           patient_id=patient.patient_id, split=patient.split, findings=s.findings,
                           text=render_text(s.findings), source="phantom", spacing_mm=FIELD_OF_VIEW_MM / cfg.size,
                           z_level=s.z_level)
                bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return cfg.out


def _expected_names(patient: _Patient) -> list[str]:
    return [_slice_name(patient, k) for k in range(patient.n_slices)]


def _slice_name(patient: _Patient, k: int) -> str:
    return f"{patient.patient_id}_s{k:02d}.png"
