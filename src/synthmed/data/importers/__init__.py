"""Importers: public and local datasets -> synthmed dataset directories.

Example:
    >>> from synthmed.data.importers import import_dataset
    >>> report = import_dataset("folder", "BrainTumorMRI/", "data/kaggle", size=256)  # doctest: +SKIP
    >>> report.written, report.skipped                                              # doctest: +SKIP

Formats (one module each): ``folder`` (class subfolders, e.g. the Kaggle Brain Tumor MRI
layout), ``figshare`` (the figshare brain-tumour ``.mat`` files), ``dicom``, ``nifti`` and
``csv`` (image-text pairs, including the ImageCLEFmed MEDVQA-GI ``prompt-gt.csv``).
See ``docs/importing.md``.
"""

from synthmed.data.importers.base import Filtered, ImportReport, Sample, SkippedItem, SourceItem
from synthmed.data.importers.core import import_dataset
from synthmed.data.importers.registry import available_formats, get_format

__all__ = [
    "Filtered",
    "ImportReport",
    "Sample",
    "SkippedItem",
    "SourceItem",
    "available_formats",
    "get_format",
    "import_dataset",
]
