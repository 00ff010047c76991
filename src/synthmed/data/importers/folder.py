"""``folder``: class subfolders of images, e.g. the Kaggle "Brain Tumor MRI" dataset.

Accepted layouts::

    SRC/Training/glioma/*.jpg   SRC/Testing/notumor/*.jpg    (split folders, then classes)
    SRC/glioma/*.jpg            SRC/notumor/*.jpg            (class folders only)

Split folders map to splits: ``Training``/``train`` -> train, ``Validation``/``val``/``valid``
-> val, ``Testing``/``test`` -> test (any case). The label is the class folder's name. Brain
tumour class names (``glioma``, ``meningioma``, ``pituitary``, ``notumor``, also the older
``glioma_tumor`` / ``no_tumor`` spellings, ``yes``/``no`` as in Br35H, ``healthy``, ``normal``) give
:class:`~synthmed.findings.BrainMRIFindings` with ``tumor_present`` and ``tumor_type``;
other class names give :class:`~synthmed.findings.GenericFindings` with the label.
Images may sit in nested folders under their class folder. The Kaggle set has no patient
ids, so ``patient_id`` stays empty (``synthmed data split`` then treats every image as its
own patient).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from synthmed.data.imageio import load_image
from synthmed.data.importers.base import (
    IMAGE_EXTENSIONS,
    FormatSpec,
    Sample,
    SourceItem,
    list_files,
    safe_name,
)
from synthmed.data.windowing import Windowing
from synthmed.errors import ConfigError, DataError
from synthmed.findings import BrainMRIFindings, GenericFindings

SPLIT_FOLDERS: dict[str, str] = {
    "training": "train", "train": "train",
    "validation": "val", "val": "val", "valid": "val",
    "testing": "test", "test": "test",
}
#: Normalised class folder name -> (tumor_present, tumor_type).
_BRAIN_CLASSES: dict[str, tuple[bool, str | None]] = {
    "glioma": (True, "glioma"), "meningioma": (True, "meningioma"), "pituitary": (True, "pituitary"),
    "yes": (True, None), "tumor": (True, None), "tumour": (True, None),
    "no": (False, None), "healthy": (False, None), "normal": (False, None),
}


@dataclass(frozen=True)
class FolderOptions:
    """Options of the ``folder`` format.

    Attributes:
        modality: "brain_mri" (class names must be brain tumour classes), "generic" (any
            class names), or "auto" (brain_mri when every class name is a brain tumour
            class, otherwise generic).
    """

    modality: Literal["auto", "brain_mri", "generic"] = "auto"

    def __post_init__(self) -> None:
        if self.modality not in ("auto", "brain_mri", "generic"):
            raise ConfigError(f"folder modality must be auto, brain_mri or generic, got {self.modality!r}")


def brain_class(name: str) -> tuple[bool, str | None] | None:
    """``(tumor_present, tumor_type)`` of a brain tumour class folder name, or None if it is not one."""
    key = re.sub(r"(?<=.)tumou?r$", "", re.sub(r"[^a-z]", "", name.lower()))  # "glioma_tumor" -> "glioma"
    return _BRAIN_CLASSES.get(key)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _loose_images(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


def discover(src: Path, options: FolderOptions) -> list[SourceItem]:
    """List the images under ``src`` and check the folder layout (see the module docstring)."""
    if not src.is_dir():
        raise DataError("expected a directory of class folders (or split folders of class folders)", src)
    top = _subdirs(src)
    if not top:
        raise DataError("no class folders found; expected SRC/<class>/*.png or SRC/<split>/<class>/*.png",
                        src)
    is_split = [d.name.lower() in SPLIT_FOLDERS for d in top]
    if any(is_split) and not all(is_split):
        raise DataError(
            "mixes split folders and class folders at the top level: "
            f"{[d.name for d, s in zip(top, is_split, strict=True) if s]} vs "
            f"{[d.name for d, s in zip(top, is_split, strict=True) if not s]}; expected only one kind", src)
    groups: list[tuple[str | None, Path]] = []  # (split, class folder)
    parents = [(d, SPLIT_FOLDERS[d.name.lower()]) for d in top] if all(is_split) else [(src, None)]
    for parent, split in parents:
        if _loose_images(parent):
            raise DataError(f"image files directly in {parent.name!r}; they must be inside class folders",
                            parent)
        classes = _subdirs(parent)
        if not classes:
            raise DataError("no class folders inside this split folder", parent)
        groups.extend((split, c) for c in classes)
    fields_of = _class_fields(sorted({c.name for _, c in groups}), options.modality, src)
    items = []
    for split, class_dir in groups:
        for path in list_files(class_dir, IMAGE_EXTENSIONS):
            rel = path.relative_to(class_dir).with_suffix("").as_posix()
            name = safe_name(split or "", class_dir.name, rel)
            fields = {**fields_of[class_dir.name], "split": split}
            items.append(SourceItem(path=path, names=(name,), info={"fields": fields}))
    if not items:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in the class folders", src)
    return items


def _class_fields(classes: list[str], modality: str, src: Path) -> dict[str, dict[str, Any]]:
    brain = {c: brain_class(c) for c in classes}
    unknown = [c for c, v in brain.items() if v is None]
    if modality == "brain_mri" and unknown:
        raise DataError(f"class folder(s) {unknown} are not brain tumour classes; expected glioma, "
                        "meningioma, pituitary or notumor (or use modality generic)", src)
    use_brain = modality == "brain_mri" or (modality == "auto" and not unknown)
    out: dict[str, dict[str, Any]] = {}
    for c in classes:
        if use_brain:
            present, tumor_type = brain[c]  # type: ignore[misc]
            findings: Any = BrainMRIFindings(tumor_present=present, tumor_type=tumor_type)
        else:
            findings = GenericFindings(label=c)
        out[c] = {"label": c, "findings": findings, "source": "real"}
    return out


def read(item: SourceItem, options: FolderOptions, windowing: Windowing | None = None) -> Iterator[Sample]:
    """Read one image file (a corrupt file raises :class:`DataError` naming it)."""
    yield Sample(name=item.names[0], image=load_image(item.path), fields=dict(item.info["fields"]))  # type: ignore[index]


FORMAT = FormatSpec(
    name="folder",
    description="class subfolders of images (Kaggle Brain Tumor MRI: Training|Testing/<class>/)",
    options_type=FolderOptions,
    discover=discover,
    read=read,
)
