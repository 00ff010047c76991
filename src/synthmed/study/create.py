"""``synthmed study create``: draw a balanced, seeded, shuffled set of real and synthetic images.

Each image is re-encoded under an opaque random id: no PNG text chunk, no EXIF, no file name,
and stored uncompressed so that every file of a study has the same size in bytes (compressed
sizes differ between real and generated images and would hint at the origin). Grayscale stays
one channel and 16-bit stays 16-bit; a colour file whose channels are equal is stored as grayscale.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthmed.data.dataset import read_records
from synthmed.data.imageio import load_image
from synthmed.data.records import DatasetRecord
from synthmed.errors import ConfigError, DataError
from synthmed.study.layout import (
    ANSWERS_FILE,
    IMAGES_DIR,
    KEY_FILE,
    SETTINGS_FILE,
    ImageFormat,
    KeyEntry,
    Question,
    StudyKey,
    StudySettings,
)

logger = logging.getLogger(__name__)

#: Images per origin when neither --n-real nor --n-fake is given (and both sets have that many).
DEFAULT_PER_ORIGIN = 50


class StudyCreateConfig(BaseModel):
    """Settings of ``synthmed study create``.

    Attributes:
        real: Dataset directory of real images.
        fake: Dataset directory of generated images (rows with ``requested_findings``).
        out: The study folder to write.
        n_real, n_fake: Images of each origin (default: the same number of each, at most 50).
        real_split: Draw real images from this split only (e.g. ``test``: patients no model saw).
        seed: Seeds which images are drawn and their order.
        questions: ``realism`` (a 1-5 score) and/or ``findings`` (tumour present? which hemisphere?);
            real-or-synthetic with a 1-6 confidence is always asked.
        title: Shown to readers.
        overwrite: Replace an existing study folder that has no answers yet.
    """

    model_config = ConfigDict(extra="forbid")

    real: Path
    fake: Path
    out: Path
    n_real: int | None = Field(default=None, ge=1)
    n_fake: int | None = Field(default=None, ge=1)
    real_split: str | None = None
    seed: int = 0
    questions: list[Question] = Field(default_factory=lambda: ["realism"])
    title: str = Field(default="Real or synthetic?", max_length=200)
    overwrite: bool = False

    @field_validator("questions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def _sizes(cfg: StudyCreateConfig, n_real_avail: int, n_fake_avail: int) -> tuple[int, int]:
    if cfg.n_real is None and cfg.n_fake is None:
        n = min(n_real_avail, n_fake_avail, DEFAULT_PER_ORIGIN)
        return n, n
    n_real = cfg.n_real if cfg.n_real is not None else cfg.n_fake
    n_fake = cfg.n_fake if cfg.n_fake is not None else cfg.n_real
    for n, avail, what, where in ((n_real, n_real_avail, "--n-real", cfg.real), (n_fake, n_fake_avail, "--n-fake",
                                                                                 cfg.fake)):
        if n > avail:
            raise DataError(f"{what} {n} asks for more images than the dataset has ({avail})", where)
    return n_real, n_fake


def _study_pixels(path: Path) -> np.ndarray:
    arr = load_image(path)
    if arr.ndim == 3 and (arr == arr[..., :1]).all():
        arr = np.ascontiguousarray(arr[..., 0])  # grey stored as RGB: one channel, losslessly
    return arr


def _format_of(arr: np.ndarray) -> ImageFormat:
    return ImageFormat(width=arr.shape[1], height=arr.shape[0], channels=1 if arr.ndim == 2 else 3,
                       bits=16 if arr.dtype == np.uint16 else 8)


def _describe(f: ImageFormat) -> str:
    return f"{f.width}x{f.height}, {'grayscale' if f.channels == 1 else 'colour'}, {f.bits}-bit"


def _check_out(cfg: StudyCreateConfig) -> None:
    out = cfg.out
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if (out / ANSWERS_FILE).exists():
        raise ConfigError(f"{out}: this study already has answers ({ANSWERS_FILE}); it is never overwritten. "
                          "Choose another --out, or move the folder away yourself")
    if not cfg.overwrite:
        raise ConfigError(f"{out}: not empty; pass --overwrite to replace it")


def create_study(cfg: StudyCreateConfig) -> Path:
    """Write the study folder ``cfg.out`` and return it.

    The folder appears complete or not at all: it is written beside ``out`` and moved into place.

    Raises:
        DataError: a dataset is unreadable, too small, or its images differ in size, channels or bit depth.
        ConfigError: ``out`` is not empty (without ``overwrite``) or already holds answers.
    """
    _check_out(cfg)
    real = [r for r in read_records(cfg.real) if cfg.real_split is None or r.split == cfg.real_split]
    if not real:
        raise DataError(f"no real images{f' in split {cfg.real_split!r}' if cfg.real_split else ''}", cfg.real)
    fake = read_records(cfg.fake)
    n_real, n_fake = _sizes(cfg, len(real), len(fake))
    rng = np.random.default_rng(cfg.seed)
    drawn: list[tuple[str, Path, DatasetRecord]] = (
        [("real", cfg.real, real[i]) for i in sorted(rng.choice(len(real), n_real, replace=False))]
        + [("synthetic", cfg.fake, fake[i]) for i in sorted(rng.choice(len(fake), n_fake, replace=False))])
    order = rng.permutation(len(drawn))

    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.", dir=cfg.out.parent))
    try:
        (tmp / IMAGES_DIR).mkdir()
        fmt: ImageFormat | None = None
        first: Path | None = None
        items: list[str] = []
        key: dict[str, KeyEntry] = {}
        for j in order:
            origin, root, rec = drawn[j]
            src = root / rec.file_name
            arr = _study_pixels(src)
            this = _format_of(arr)
            if fmt is None:
                fmt, first = this, src
            elif this != fmt:
                raise DataError(f"this image is {_describe(this)} but {first} is {_describe(fmt)}: a reader would "
                                "tell the origin from the format; give both datasets the same size, channels and "
                                "bit depth", src)
            item = secrets.token_hex(8)
            while item in key:
                item = secrets.token_hex(8)
            # compress_level 0: stored blocks, so every file of the study has the same length.
            Image.fromarray(arr).save(tmp / IMAGES_DIR / f"{item}.png", format="PNG", compress_level=0)
            findings = rec.findings if origin == "real" else (rec.requested_findings or rec.findings)
            key[item] = KeyEntry(origin=origin, dataset=str(root.resolve()), file_name=rec.file_name,
                                 findings=findings.model_dump(mode="json") if findings is not None else None)
            items.append(item)
        assert fmt is not None
        settings = StudySettings(title=cfg.title, seed=cfg.seed, questions=cfg.questions, image_format=fmt,
                                 items=items)
        (tmp / SETTINGS_FILE).write_text(settings.model_dump_json(indent=1), encoding="utf-8")
        (tmp / KEY_FILE).write_text(StudyKey(items=key).model_dump_json(indent=1), encoding="utf-8")
        if cfg.out.exists():
            shutil.rmtree(cfg.out)
        tmp.rename(cfg.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("study: %d real + %d synthetic images (%s) in %s", n_real, n_fake, _describe(fmt), cfg.out)
    return cfg.out
