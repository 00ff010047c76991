"""Lesion masks of mask-conditioned generation: given in a folder, taken from a dataset, or drawn from findings.

Image ``i`` of a run goes with prompt ``i // n_per_prompt`` and that prompt's mask:

* ``--masks DATASET`` (a synthmed dataset directory): every row with a mask is a prompt, its
  caption (or its findings rendered) the text, its findings the requested findings;
* ``--masks FOLDER`` (PNG masks, taken in name order) with a prompt source of one prompt (used
  for every mask) or of one prompt per mask (paired in order);
* ``--masks-from-findings``: each image's mask is drawn from the phantom's tumour model for its
  prompt's findings (:func:`synthmed.data.phantom.masks.lesion_mask_for`), seeded by the
  image's seed, so the same run draws the same masks.

Every given mask is checked before the model loads (:func:`synthmed.data.imageio.load_lesion_mask`):
the size of the first one (or ``--height``/``--width``), binary, not inverted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthmed.data.dataset import is_dataset
from synthmed.data.imageio import load_lesion_mask
from synthmed.errors import ConfigError, DataError
from synthmed.findings.render import render_text
from synthmed.findings.schema import BrainMRIFindings
from synthmed.generate.config import GenerateConfig
from synthmed.generate.prompts import PromptSpec, collect_prompts

MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


def _dataset_masks(root: Path) -> tuple[list[PromptSpec], list[Path], list[Path]]:
    from synthmed.data.dataset import read_records

    rows = [r for r in read_records(root) if r.mask_file_name]
    if not rows:
        raise DataError("no row has a mask_file_name to generate from", root / "metadata.jsonl")
    specs = []
    for r in rows:
        text = r.text or (render_text(r.findings) if r.findings is not None else None)
        if text is None:
            raise DataError(f"row {r.file_name!r} has neither text nor findings to prompt with",
                            root / "metadata.jsonl")
        specs.append(PromptSpec(text, r.findings))
    return specs, [root / r.mask_file_name for r in rows], [root / r.file_name for r in rows]


def _folder_masks(folder: Path, specs: list[PromptSpec]) -> tuple[list[PromptSpec], list[Path]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MASK_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"--masks {folder}: no mask images ({', '.join(MASK_SUFFIXES)}) in the folder")
    if len(specs) == 1:
        specs = specs * len(files)
    elif len(specs) != len(files):
        raise ConfigError(f"--masks {folder}: {len(files)} masks but {len(specs)} prompts; give one prompt (used for "
                          "every mask) or one per mask (paired in file-name order)")
    return specs, files


def plan(cfg: GenerateConfig) -> tuple[list[PromptSpec], list[Path] | None, list[Path] | None]:
    """The run's prompts and, with ``--masks``, each prompt's mask file (checked) and, for a dataset, its image.

    Raises:
        ConfigError / DataError: a bad folder, a count mismatch, a prompt without findings for
            ``--masks-from-findings``, or a bad mask file (named).
    """
    has_source = bool(cfg.prompts or cfg.prompts_file or cfg.findings_grid)
    specs = collect_prompts(prompts=cfg.prompts, prompts_file=cfg.prompts_file, findings_grid_spec=cfg.findings_grid,
                            num_prompts=cfg.num_prompts, balance_presence=cfg.balance_presence,
                            seed=cfg.seed) if has_source else []
    if cfg.masks_from_findings:
        missing = [i for i, s in enumerate(specs) if not isinstance(s.findings, BrainMRIFindings)]
        if missing:
            raise ConfigError(f"--masks-from-findings draws each mask from its prompt's findings, but prompt "
                              f"{missing[0]} ({specs[missing[0]].text!r}) states none; use a findings grid or "
                              "balanced:DATASET")
        return specs, None, None
    if cfg.masks is None:
        return specs, None, None
    folder = Path(cfg.masks)
    if not folder.is_dir():
        raise ConfigError(f"--masks {folder}: no such folder")
    images = None
    if is_dataset(folder):
        specs, files, images = _dataset_masks(folder)
    else:
        specs, files = _folder_masks(folder, specs)
    shape = (cfg.height, cfg.width) if cfg.height and cfg.width else None
    for f in files:
        shape = load_lesion_mask(f, shape=shape).shape
    return specs, files, images


def output_size(cfg: GenerateConfig, files: list[Path] | None, pipe) -> tuple[int, int]:
    """(height, width) of the run's images: the flags, else the masks' size, else the pipeline's default."""
    if cfg.height and cfg.width:
        return cfg.height, cfg.width
    if files:
        return load_lesion_mask(files[0]).shape
    side = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    return cfg.height or side, cfg.width or side


def check_heads_available(cfg: GenerateConfig, images: list[Path] | None) -> None:
    """Refuse a run whose model needs head outlines (a ``mask+head`` LDM) when the masks come without them.

    Raises:
        ConfigError: ``--masks FOLDER`` of bare lesion masks.
    """
    if not cfg.masks_from_findings and images is None:
        raise ConfigError(f"--masks {cfg.masks}: this model (mask+head) draws each slice inside a head outline, "
                          "which a folder of lesion masks does not give; use a dataset (the head is found in each "
                          "row's image) or --masks-from-findings")


def masks_for(cfg: GenerateConfig, files: list[Path] | None, specs: list[PromptSpec], indices: list[int],
              seeds: list[int], size: tuple[int, int], *, images: list[Path] | None = None,
              heads: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The (H, W) bool lesion mask of each image index (its prompt's file, or drawn with the image's seed), and
    with ``heads`` its head outline (the drawn phantom slice's, or found in the dataset row's image)."""
    lesions, outlines = [], []
    for i, seed in zip(indices, seeds, strict=True):
        prompt = i // cfg.n_per_prompt
        if files is not None:
            lesions.append(load_lesion_mask(files[prompt], shape=size))
            if heads:
                outlines.append(_head_of_image(images[prompt], size))  # type: ignore[index]
            continue
        from synthmed.data.phantom.masks import lesion_layout

        if size[0] != size[1]:
            raise ConfigError(f"--masks-from-findings draws square phantom masks; the images are {size[1]}x{size[0]}")
        layout = lesion_layout(specs[prompt].findings, size=size[0], seed=seed)
        lesions.append(layout.lesion)
        outlines.append(layout.head)
    return lesions, outlines if heads else None


def _head_of_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    from synthmed.data.head_mask import head_mask
    from synthmed.data.imageio import load_image, to_float01

    image = to_float01(load_image(path))
    if image.shape[:2] != tuple(size):
        raise DataError(f"image is {image.shape[1]}x{image.shape[0]} px but its mask is {size[1]}x{size[0]} px", path)
    return head_mask(image)


def row_fields(cfg: GenerateConfig, size: tuple[int, int]) -> dict:
    """Row fields of a mask-conditioned image: the pixel size of the phantom masks drawn from findings."""
    if not cfg.masks_from_findings:
        return {}
    from synthmed.data.phantom.anatomy import FIELD_OF_VIEW_MM

    return {"spacing_mm": FIELD_OF_VIEW_MM / size[0]}


def control_image(mask: np.ndarray):
    """The ControlNet's conditioning image of a lesion mask: white lesion on black, RGB (PIL)."""
    from PIL import Image

    grey = np.where(mask, 255, 0).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1), mode="RGB")
