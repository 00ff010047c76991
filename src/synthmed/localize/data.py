"""Reading a dataset directory into the arrays the localiser trains and predicts on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthmed.data.dataset import ImageDataset
from synthmed.data.records import DatasetRecord
from synthmed.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class LocalizeItem:
    """One image with its lesion mask (None when the row has no mask) and tumour label."""

    record: DatasetRecord
    image: np.ndarray
    mask: np.ndarray | None

    @property
    def label(self) -> int | None:
        """1 tumour / 0 none, from the mask when there is one, else from the findings, else None."""
        if self.mask is not None:
            return int(self.mask.any())
        f = self.record.findings
        present = getattr(f, "tumor_present", None)
        return None if present is None else int(present)


def load_items(root: str | Path, split: str | None = None, *, need_masks: bool = False) -> list[LocalizeItem]:
    """Images (and masks) of one split of a dataset directory.

    Args:
        root: The dataset directory.
        split: "train", "val", "test", or None for every row.
        need_masks: Drop rows without a mask (with a warning); raise if none is left.

    Raises:
        DataError: the directory is not a dataset, the split is empty, a mask's size differs
            from its image, or masks are needed and there are none.
    """
    ds = ImageDataset(root)
    records = ds.records if split is None else ds.split(split)
    if not records:
        have = sorted({r.split for r in ds.records if r.split})
        raise DataError(f"no rows in split {split!r} (splits present: {have or 'none'}); "
                        "run `synthmed data split` first", Path(root) / "metadata.jsonl")
    items = []
    for rec in records:
        image = ds.image(rec)
        mask = ds.mask(rec)
        if mask is not None and mask.shape != image.shape[:2]:
            raise DataError(f"mask {rec.mask_file_name!r} is {mask.shape} but its image is {image.shape[:2]}",
                            Path(root) / "metadata.jsonl")
        items.append(LocalizeItem(rec, image, mask))
    if need_masks:
        kept = [it for it in items if it.mask is not None]
        if len(kept) < len(items):
            logger.warning("%s: %d of %d rows have no mask and are skipped", root, len(items) - len(kept), len(items))
        if not kept:
            raise DataError("no row has a lesion mask; the localiser trains on masks "
                            "(an empty mask marks a healthy image)", Path(root) / "metadata.jsonl")
        items = kept
    return items
