"""Dataset directories, importers, splits, statistics and the phantom benchmark."""

from synthmed.data.dataset import DatasetWriter, ImageDataset, read_records, write_records
from synthmed.data.imageio import load_image, load_mask, quantize, save_png_atomic, to_float01
from synthmed.data.records import SPLITS, DatasetRecord

__all__ = [
    "SPLITS",
    "DatasetRecord",
    "DatasetWriter",
    "ImageDataset",
    "load_image",
    "load_mask",
    "quantize",
    "read_records",
    "save_png_atomic",
    "to_float01",
    "write_records",
]
