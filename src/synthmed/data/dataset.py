"""Dataset directories: the file format every synthmed stage reads and writes.

Layout (a Hugging Face ``imagefolder``)::

    DIR/metadata.jsonl   one JSON object (a DatasetRecord) per line
    DIR/images/*.png     8- or 16-bit PNGs, grayscale stays grayscale
    DIR/masks/*.png      optional lesion masks, same size as their image

Writes are crash-safe: an image is written to a temporary file and renamed into place
before its metadata line is appended with one ``write`` call and fsynced, so a killed job
leaves at worst an image without a row, never a row without its image. A torn last line
(power loss in the middle of the append) is cut off when the directory is next opened for
writing. Whole-file rewrites (captioning, splitting) go through a temporary file and an
atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

import synthmed.utils.outdir as outdir
from synthmed.data.imageio import image_size, load_image, load_mask, save_png_atomic
from synthmed.data.records import DatasetRecord
from synthmed.errors import DataError
from synthmed.utils.configs import format_validation_error
from synthmed.utils.provenance import hash_file
from synthmed.utils.tmpfiles import mkstemp_for

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.jsonl"
IMAGES_DIR = "images"
MASKS_DIR = "masks"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Words that Hugging Face ``imagefolder`` reads as split names when they stand between
#: separators in a file name: a single such name makes it infer splits from file names and
#: ignore ``metadata.jsonl``. Image names must not contain them; use the abbreviations.
_SPLIT_WORDS = {"train": "tr", "training": "tr", "validation": "va", "valid": "va", "val": "va", "dev": "dv",
                "test": "te", "testing": "te", "eval": "ev", "evaluation": "ev"}
_WORDS = re.compile(r"[A-Za-z]+")


def safe_image_name(*parts: str) -> str:
    """Join ``parts`` with ``_`` into a PNG file name that every reader takes as intended.

    Unsafe characters become ``_``, and split words standing alone ("test", "train", ...)
    are abbreviated ("te", "tr", ...): ``safe_image_name("train", "glioma", "1")`` ->
    ``"tr_glioma_1.png"``.
    """
    stem = "_".join(_UNSAFE.sub("_", p).strip("_") for p in parts if p)
    stem = _WORDS.sub(lambda m: _SPLIT_WORDS.get(m.group(0).lower(), m.group(0)), stem)
    return f"{stem or 'image'}.png"


def _check_image_name(name: str) -> None:
    if "/" in name or not name.endswith(".png") or _UNSAFE.search(name):
        raise DataError(f"image name must be a plain file name of [A-Za-z0-9._-] ending in .png, got {name!r} "
                        "(safe_image_name() makes one)")
    words = [w for w in _WORDS.findall(name[:-4]) if w.lower() in _SPLIT_WORDS]
    if words:
        raise DataError(f"image name {name!r} contains the split word {words[0]!r}, which makes Hugging Face "
                        f"imagefolder ignore metadata.jsonl; use safe_image_name() (e.g. "
                        f"{safe_image_name(name[:-4])!r})")


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a dataset directory (holds a ``metadata.jsonl``)."""
    return (Path(path) / METADATA_FILE).is_file()


def read_records(root: str | Path, *, check_files: bool = True) -> list[DatasetRecord]:
    """Read and validate every row of ``root/metadata.jsonl``.

    Args:
        root: The dataset directory.
        check_files: Also check that each image exists, is readable, and that its mask
            (if any) exists with the same width and height. Reads file headers only.

    Raises:
        DataError: naming the file and line of the first bad row (bad JSON, an invalid or
            unknown field value such as an unknown split, a duplicate file name, a missing
            image or mask, or a mask whose size differs from its image).
    """
    root = Path(root)
    meta = root / METADATA_FILE
    if not root.is_dir():
        raise DataError("dataset directory not found", root)
    if not meta.is_file():
        raise DataError(f"no {METADATA_FILE} in this directory; is it a synthmed dataset?", root)
    records: list[DatasetRecord] = []
    seen: dict[str, int] = {}
    with meta.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON ({err.msg} at column {err.colno})", meta, lineno) from err
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", meta, lineno)
            try:
                rec = DatasetRecord.model_validate(obj)
            except ValidationError as err:
                raise DataError(format_validation_error(err, subject="row"), meta, lineno) from err
            if rec.file_name in seen:
                raise DataError(f"duplicate file_name {rec.file_name!r} (first on line {seen[rec.file_name]})",
                                meta, lineno)
            seen[rec.file_name] = lineno
            if check_files:
                _check_files(root, rec, meta, lineno)
            records.append(rec)
    return records


def _check_files(root: Path, rec: DatasetRecord, meta: Path, lineno: int) -> None:
    img_path = root / rec.file_name
    if not img_path.is_file():
        raise DataError(f"image {rec.file_name!r} does not exist", meta, lineno)
    try:
        size = image_size(img_path)
    except DataError as err:
        raise DataError(f"image {rec.file_name!r} is not readable: {err}", meta, lineno) from err
    if rec.mask_file_name is not None:
        mask_path = root / rec.mask_file_name
        if not mask_path.is_file():
            raise DataError(f"mask {rec.mask_file_name!r} does not exist", meta, lineno)
        try:
            msize = image_size(mask_path)
        except DataError as err:
            raise DataError(f"mask {rec.mask_file_name!r} is not readable: {err}", meta, lineno) from err
        if msize != size:
            raise DataError(
                f"mask {rec.mask_file_name!r} is {msize[0]}x{msize[1]} but image {rec.file_name!r} is "
                f"{size[0]}x{size[1]} (width x height); they must match", meta, lineno)


class ImageDataset:
    """A dataset directory opened for reading.

    Example:
        >>> ds = ImageDataset("data/phantom")           # doctest: +SKIP
        >>> rec = ds.records[0]; img = ds.image(rec)    # (H, W) uint8
    """

    def __init__(self, root: str | Path, *, check_files: bool = True):
        self.root = Path(root)
        self.records = read_records(self.root, check_files=check_files)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[DatasetRecord]:
        return iter(self.records)

    def image(self, rec: DatasetRecord) -> np.ndarray:
        """The image of ``rec``, dtype and channels as stored."""
        return load_image(self.root / rec.file_name)

    def mask(self, rec: DatasetRecord) -> np.ndarray | None:
        """The (H, W) bool lesion mask of ``rec``, or ``None`` when it has none."""
        if rec.mask_file_name is None:
            return None
        return load_mask(self.root / rec.mask_file_name)

    def split(self, name: str) -> list[DatasetRecord]:
        """The records of one split ("train", "val" or "test")."""
        return [r for r in self.records if r.split == name]


def _repair_torn_tail(meta: Path) -> None:
    """Mend a last line that lacks its newline.

    A line that parses (a hand edit saved without a final newline) gets its newline; one that
    does not (a write interrupted by power loss) is cut, with a warning.
    """
    if not meta.exists() or meta.stat().st_size == 0:
        return
    with meta.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        data = meta.read_bytes()
        cut = data.rfind(b"\n") + 1
        try:
            DatasetRecord.model_validate(json.loads(data[cut:].decode("utf-8")))
        except (ValueError, TypeError):  # JSONDecodeError, UnicodeDecodeError and ValidationError among them
            logger.warning("%s: removing an incomplete last line (%d bytes) left by an interrupted write",
                           meta, len(data) - cut)
            fh.truncate(cut)
        else:
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")


class DatasetWriter:
    """Append images and rows to a dataset directory, crash-safely and resumably.

    The writer holds the directory's write lock (:mod:`synthmed.utils.outdir`) until
    :meth:`close` (or the end of a ``with`` block), so a second process writing the same
    dataset stops with a clear error instead of doubling its rows.

    Args:
        root: The dataset directory: new, empty, or a synthmed dataset (``metadata.jsonl``).
            A non-empty directory without one holds someone else's files and is refused.
        overwrite: Start from an empty ``metadata.jsonl`` (existing images are left and
            overwritten by name).

    Attributes:
        existing: file names already present, so a resumed job can skip them.

    Raises:
        DataError: ``root`` is a non-empty directory that is not a synthmed dataset.
        ConfigError: another process is writing ``root``.
    """

    def __init__(self, root: str | Path, *, overwrite: bool = False):
        self.root = Path(root)
        self.meta = self.root / METADATA_FILE
        if self.root.is_dir() and not self.meta.exists() and not outdir.is_empty(self.root):
            raise DataError("the directory is not empty and is not a synthmed dataset (it has no "
                            f"{METADATA_FILE}); choose a new or empty directory", self.root)
        self._lock = outdir.acquire(self.root)
        (self.root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        if overwrite and self.meta.exists():
            self.meta.unlink()
        self.meta.touch()  # marks the directory as a dataset from its first moment
        _repair_torn_tail(self.meta)
        self.existing = {r.file_name for r in read_records(self.root, check_files=False)}

    def close(self) -> None:
        """Give back the directory's write lock (idempotent)."""
        if self._lock is not None:
            outdir.release(self._lock)
            self._lock = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()

    def has(self, name: str) -> bool:
        """Whether an image called ``name`` (e.g. "p001_s02.png") is already recorded."""
        return f"{IMAGES_DIR}/{name}" in self.existing

    def add(self, name: str, image: np.ndarray, *, mask: np.ndarray | None = None,
            **fields: Any) -> DatasetRecord:
        """Write one image (and mask) and append its row.

        Args:
            name: The file name inside ``images/`` (and ``masks/``), e.g. "p001_s02.png".
            image: (H, W) uint8/uint16 or (H, W, 3) uint8 array.
            mask: Optional (H, W) bool or uint8 array of the same height and width.
            **fields: The other :class:`DatasetRecord` fields.

        Raises:
            DataError: the name is already recorded, or the mask size differs from the image.
        """
        _check_image_name(name)
        file_name = f"{IMAGES_DIR}/{name}"
        if file_name in self.existing:
            raise DataError(f"{file_name!r} is already in the dataset", self.meta)
        mask_file_name = None
        if mask is not None:
            if mask.shape[:2] != image.shape[:2]:
                raise DataError(f"mask shape {mask.shape[:2]} differs from image shape {image.shape[:2]} for {name!r}")
            mask_file_name = f"{MASKS_DIR}/{name}"
        record = DatasetRecord(file_name=file_name, mask_file_name=mask_file_name, **fields)
        line = json.dumps(record.to_json_dict(), ensure_ascii=False) + "\n"
        save_png_atomic(self.root / file_name, image)
        if mask is not None:
            save_png_atomic(self.root / mask_file_name, mask.astype(bool))
        self._append(line)
        self.existing.add(file_name)
        return record

    def _append(self, line: str) -> None:
        data = line.encode("utf-8")
        fd = os.open(self.meta, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            written = os.write(fd, data)
            if written != len(data):  # pragma: no cover - only on a full disk
                raise OSError(f"short write to {self.meta}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)


def write_records(root: str | Path, records: Iterable[DatasetRecord]) -> None:
    """Replace ``root/metadata.jsonl`` atomically with ``records`` (images are untouched)."""
    root = Path(root)
    fd, tmp = mkstemp_for(root, prefix=".tmp-metadata-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec.to_json_dict(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, root / METADATA_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def hash_dataset(root: str | Path) -> str:
    """A content hash of a dataset directory: its metadata and every file it names.

    Two directories with the same rows and the same image bytes hash the same,
    wherever they are.
    """
    root = Path(root)
    h = hashlib.sha256()
    h.update(hash_file(root / METADATA_FILE).encode())
    for rec in read_records(root, check_files=False):
        for name in (rec.file_name, rec.mask_file_name):
            if name:
                h.update(name.encode())
                h.update(hash_file(root / name).encode())
    return h.hexdigest()
