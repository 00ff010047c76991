"""The captioner contract and registry.

A captioner turns images (with an optional lesion mask and pixel spacing) into structured
findings plus the raw reply it was derived from. Every captioner — mask analysis, a local
VLM, a remote VLM — has the same contract, so stages and evaluations never special-case one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from synthmed.findings.schema import BrainMRIFindings, GenericFindings, GIEndoscopyFindings
from synthmed.utils.registry import PrefixRegistry

AnyFindings = BrainMRIFindings | GIEndoscopyFindings | GenericFindings


@dataclass(frozen=True)
class CaptionInput:
    """One image to caption.

    Attributes:
        key: A stable identifier (the dataset file name), for caching and errors.
        image: (H, W) uint8/uint16 or (H, W, 3) uint8 array, as stored.
        mask: Optional (H, W) bool lesion mask.
        spacing_mm: Pixel spacing in mm, if known.
        modality: "brain_mri", "gi_endoscopy" or "generic".
    """

    key: str
    image: np.ndarray
    mask: np.ndarray | None = None
    spacing_mm: float | None = None
    modality: str = "brain_mri"


@dataclass(frozen=True)
class CaptionResult:
    """What a captioner says about one image.

    ``findings`` is None when the captioner could not produce valid findings; ``error``
    then says why and ``raw`` keeps what it replied. Never a silent default. ``transient``
    marks a failure that may not recur (a network error, a rate limit that outlasted the
    retries): such results are not cached, so the next run asks again.
    """

    key: str
    findings: AnyFindings | None
    raw: str | None = None
    error: str | None = None
    transient: bool = False


class Captioner(Protocol):
    """Images -> findings.

    A captioner whose answers are worth keeping (a model call) also defines
    ``cache_key(item) -> str``; the runner then caches its results on disk.
    """

    name: str

    def caption(self, items: Sequence[CaptionInput]) -> list[CaptionResult]:
        """Caption a batch; one result per input, in order."""
        ...


_REGISTRY: PrefixRegistry[Captioner] = PrefixRegistry(
    "captioner", ("synthmed.caption.api", "synthmed.caption.hf", "synthmed.caption.mask"))


def register_captioner(prefix: str) -> Callable[[Callable[..., Captioner]], Callable[..., Captioner]]:
    """Register a captioner factory under a name (``mask``) or a prefix (``hf``, ``api``).

    A name ``"hf:some/model"`` calls the ``hf`` factory with ``model="some/model"``.
    """
    return _REGISTRY.register(prefix)


def captioner_names() -> list[str]:
    """Registered captioner names (prefixes shown as ``prefix:<model>``)."""
    return _REGISTRY.names()


def get_captioner(name: str, **options: object) -> Captioner:
    """Build a captioner by name, e.g. ``"mask"``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
    """
    return _REGISTRY.build(name, **options)
