"""Training data for the LDM: images as tensors and their captions, checked up front."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthmed.data.dataset import ImageDataset
from synthmed.data.imageio import to_float01
from synthmed.errors import DataError

logger = logging.getLogger(__name__)


def latent_cache_is_current(path: Path, digest: str) -> bool:
    """Whether the safetensors latent cache at ``path`` exists and was written for ``digest``."""
    if not path.is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return (fh.metadata() or {}).get("digest") == digest


@dataclass
class TrainingData:
    """Images and captions of the training rows.

    Attributes:
        images: (N, C, H, W) float32 in [-1, 1]; C is 1 for grayscale data, 3 for colour.
        captions: For each image, its ``text`` followed by its ``paraphrases`` (when used).
        names: The rows' ``file_name``.
        bit_depth: 16 when any image was 16-bit, else 8.
        masks: (N, 1, H, W) float32 lesion masks in [0, 1] (an empty mask for a row without a
            lesion) when every row has a mask file; None otherwise.
    """

    images: torch.Tensor
    captions: list[list[str]]
    names: list[str]
    bit_depth: int
    masks: torch.Tensor | None = None

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def head_masks(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) float head masks (:func:`synthmed.data.head_mask.head_mask`) of (N, C, H, W) images in [-1, 1]."""
    from synthmed.data.head_mask import head_mask

    heads = [head_mask(((img + 1) / 2).permute(1, 2, 0).numpy()) for img in images]
    return torch.from_numpy(np.stack(heads)).unsqueeze(1).float()


def _square_resize(img01: np.ndarray, size: int | None) -> np.ndarray:
    """Centre-crop an (H, W) or (H, W, C) float image to a square, then resize to ``size``."""
    h, w = img01.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img01 = img01[top:top + side, left:left + side]
    if size is None or size == side:
        return img01
    chans = [img01] if img01.ndim == 2 else [img01[..., c] for c in range(img01.shape[2])]
    resample = Image.Resampling.BOX if size < side else Image.Resampling.BICUBIC
    out = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F")
                      .resize((size, size), resample=resample)) for c in chans]
    res = out[0] if img01.ndim == 2 else np.stack(out, axis=-1)
    return np.clip(res, 0.0, 1.0)


def _colour_mode(images: list[np.ndarray], names: list[str], meta: Path) -> bool:
    """Whether to train on RGB: all images colour, or all grayscale (colour files with equal channels count as grey).

    Raises:
        DataError: real colour images are mixed with grayscale ones.
    """
    colour = [n for img, n in zip(images, names, strict=True) if img.ndim == 3]
    if not colour or len(colour) == len(images):
        return bool(colour)
    grey_looking = [n for img, n in zip(images, names, strict=True)
                    if img.ndim == 3 and np.array_equal(img[..., 0], img[..., 1])
                    and np.array_equal(img[..., 0], img[..., 2])]
    if len(grey_looking) == len(colour):
        logger.warning("%s: %d of %d images are stored as RGB/RGBA but hold grey values (first: %s); "
                       "training a grayscale model on their first channel", meta, len(colour), len(images), colour[0])
        return False
    tinted = sorted(set(colour) - set(grey_looking))
    raise DataError(f"{len(tinted)} images are in colour (first: {tinted[0]!r}) but {len(images) - len(colour)} "
                    "are grayscale; a model is trained on one kind; convert the odd ones or drop them", meta)


def load_training_data(root: str | Path, *, resolution: int | None, split: str | None = "train",
                       use_paraphrases: bool = True, require_captions: bool = True) -> TrainingData:
    """Read, check and tensorise a captioned dataset directory.

    Args:
        root: The dataset directory.
        resolution: Square side to resize to; None keeps the data's size (all images must then agree).
        split: Use only rows of this split when rows carry splits; None uses every row.
        use_paraphrases: Add each row's ``paraphrases`` to its captions.
        require_captions: Refuse rows without ``text`` (off for image + mask training: captions are then empty).

    Raises:
        DataError: the directory is missing or not a dataset, has no rows (in ``split``), a row
            has no ``text``, or image sizes differ with ``resolution=None``.
    """
    ds = ImageDataset(root)
    meta = Path(root) / "metadata.jsonl"
    records = ds.records
    if not records:
        raise DataError("the dataset has no rows", meta)
    if split is not None and any(r.split is not None for r in records):
        chosen = [r for r in records if r.split == split]
        if not chosen:
            present = sorted({r.split for r in records if r.split})
            raise DataError(f"no rows in split {split!r} (splits present: {present}); pick one with split=",
                            meta)
        records = chosen
    elif split is not None:
        logger.info("%s: rows carry no split; training on all %d rows", meta, len(records))
    missing = [r.file_name for r in records if not (r.text and r.text.strip())]
    if missing and require_captions:
        raise DataError(f"{len(missing)} of {len(records)} rows have no 'text' caption (first: {missing[0]!r}); "
                        "caption the dataset first (synthmed caption)", meta)

    arrays, bit_depth = [], 8
    loaded = [ds.image(rec) for rec in records]
    colour = _colour_mode(loaded, [r.file_name for r in records], meta)
    for img in loaded:
        bit_depth = 16 if img.dtype == np.uint16 else bit_depth
        if not colour and img.ndim == 3:
            img = img[..., 0]
        arrays.append(_square_resize(to_float01(img), resolution))
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) > 1:
        raise DataError(f"images have different sizes {sorted(shapes)[:4]}; set a resolution", meta)
    chans = 3 if colour else 1
    tensors = []
    for a in arrays:
        a = a[..., None] if a.ndim == 2 else a
        if a.shape[-1] != chans:
            a = np.repeat(a, chans, axis=-1)
        tensors.append(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))))
    images = torch.stack(tensors).float() * 2.0 - 1.0  # [0, 1] -> [-1, 1]
    masks = None
    if all(r.mask_file_name for r in records):
        masks = torch.stack([torch.from_numpy(np.ascontiguousarray(
            _square_resize((ds.mask(r) > 0).astype(np.float32), resolution))) for r in records]).unsqueeze(1).float()
    captions = [([r.text.strip()] if r.text and r.text.strip() else [])
                + ([p.strip() for p in r.paraphrases if p.strip()] if use_paraphrases else []) for r in records]
    logger.info("%d training images (%s, %dx%d), %d captions", len(records), "RGB" if colour else "grayscale",
                images.shape[-1], images.shape[-2], sum(len(c) for c in captions))
    return TrainingData(images=images, captions=captions, names=[r.file_name for r in records], bit_depth=bit_depth,
                        masks=masks)
