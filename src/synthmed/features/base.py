"""The feature-extractor contract: images in, an (N, D) float tensor out.

Every extractor (Inception, EfficientNet-Lite0, CLIP, DINOv2, a domain encoder) takes the
images exactly as a dataset stores them — (H, W) uint8 or uint16 grayscale, (H, W, 3) uint8
RGB, or float arrays in [0, 1] — and does its own preprocessing (channel replication,
resizing, quantisation, normalisation). Nothing is converted to 8 bit or RGB before that,
so 16-bit and grayscale data stay faithful until the one step that the extractor's
convention requires, and :meth:`FeatureExtractor.describe` writes that step down.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


@dataclass
class ExtractedFeatures:
    """The output of :meth:`FeatureExtractor.extract`.

    Attributes:
        features: (N, D) float32 feature vectors, one row per input image, in input order.
        logits: (N, C) float32 classifier logits (the input of the Inception Score), or
            ``None`` when the extractor has no classification head.
    """

    features: torch.Tensor
    logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> ExtractedFeatures:
        """The rows ``index`` (a list or array of row numbers)."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return ExtractedFeatures(self.features[idx], None if self.logits is None else self.logits[idx])


class FeatureExtractor(abc.ABC):
    """Maps a batch of images to a (N, D) float tensor of features.

    Subclasses set :attr:`name`, :attr:`dim` and implement :meth:`preprocess` and
    :meth:`forward`; they describe themselves (weights, hash, preprocessing) for
    ``metrics.json`` through :meth:`describe`.

    Attributes:
        name: The registry name that builds this extractor (e.g. ``"inception"``).
        dim: Feature dimension D.
        comparable_with_published: Whether a Fréchet distance on these features can be
            compared with figures published by torch-fidelity / clean-fid / torchmetrics.
        note: A sentence shown next to every number computed with this extractor.
    """

    name: str = "base"
    dim: int = 0
    comparable_with_published: bool = False
    note: str = ""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    # -- to implement -----------------------------------------------------------------
    @abc.abstractmethod
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Turn stored images into the network input (B, 3, S, S) float tensor."""

    @abc.abstractmethod
    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Network input -> ((B, D) features, (B, C) logits or None)."""

    @abc.abstractmethod
    def preprocessing(self) -> dict[str, Any]:
        """How images are prepared: resize method and size, quantisation, normalisation."""

    def weights(self) -> dict[str, Any]:
        """Where the weights come from and their SHA-256 (``{"file":…, "sha256":…}``)."""
        return {}

    @property
    def provides_logits(self) -> bool:
        """Whether :meth:`forward` returns classifier logits (for the Inception Score)."""
        return False

    # -- shared -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything ``metrics.json`` records about this extractor."""
        return {
            "name": self.name,
            "dim": self.dim,
            "comparable_with_published": self.comparable_with_published,
            "note": self.note,
            "weights": self.weights(),
            "preprocessing": self.preprocessing(),
        }

    def cache_key(self) -> str:
        """A hash of the name, the weights and the preprocessing: equal keys, equal features."""
        desc = {"name": self.name, "dim": self.dim, "weights": self.weights(), "preprocessing": self.preprocessing()}
        return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The contract: a batch of images -> (N, D) float32 features on the CPU."""
        feats, _ = self.forward(self.preprocess(images).to(self.device))
        return feats.float().cpu()

    @torch.no_grad()
    def extract(self, images: Iterable[np.ndarray], *, batch_size: int = 32, total: int | None = None,
                progress: bool = False, desc: str = "features") -> ExtractedFeatures:
        """Features (and logits) of every image, in order, batched.

        Args:
            images: Any iterable of image arrays (a generator keeps memory flat).
            batch_size: Images per forward pass.
            total: Number of images, for the progress bar.
            progress: Show a progress bar.
            desc: Progress-bar label.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        feats: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []
        bar = tqdm(total=total, disable=not progress, desc=desc, unit="img")
        for batch in _batched(images, batch_size):
            f, lg = self.forward(self.preprocess(batch).to(self.device))
            feats.append(f.float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
            bar.update(len(batch))
        bar.close()
        if not feats:
            raise ValueError("no images to extract features from")
        out = torch.cat(feats)
        return ExtractedFeatures(out, torch.cat(logits) if logits else None)


def _batched(items: Iterable[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
