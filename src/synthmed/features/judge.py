"""``judge:<ref>``: the findings judge's embedding, a feature space trained on real scans of the task.

de Wilde et al. report a medical-domain Fréchet distance beside FID: the same distance on the
features of a network trained on the medical data. The findings judge (``synthmed train judge``,
or a shipped ``builtin:`` one) is such a network: its embedding is the vector from which it
reads presence, side, lobe, size, shape and signal, so a distance there measures whether
generated images carry real-looking findings, which ImageNet features barely see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from synthmed.classify.data import prepare_image, to_channels
from synthmed.features.base import FeatureExtractor
from synthmed.judge.io import WEIGHTS_FILE, FindingsJudge, resolve_judge
from synthmed.utils.provenance import hash_file


class JudgeExtractor(FeatureExtractor):
    """Features of a findings judge (:meth:`synthmed.judge.model.JudgeNet.embed`).

    Args:
        ref: A judge directory or ``builtin:<name>``.
        device: Torch device.
    """

    comparable_with_published = False

    def __init__(self, ref: str, device: str | torch.device = "cpu"):
        super().__init__(device)
        judge = FindingsJudge.from_pretrained(ref)
        self.ref = ref
        self.net = judge.net.eval().requires_grad_(False).to(self.device)
        self.size = judge.config.image_size
        self.channels = judge.config.channels
        self.name = f"judge:{ref}"
        self.dim = judge.config.hidden
        self.note = ("Fréchet distance on a findings judge's embedding (a medical-domain FD, trained on real scans "
                     "of this task); comparable only with numbers computed with the same judge.")
        self._sha256 = hash_file(resolve_judge(ref) / WEIGHTS_FILE)

    def weights(self) -> dict[str, Any]:
        return {"judge": self.ref, "sha256": self._sha256}

    def preprocessing(self) -> dict[str, Any]:
        return {"size": self.size, "channels": self.channels, "range": "[0, 1]",
                "resize": "zero-pad to square, bilinear (antialiased when shrinking)", "convention": "the judge's own"}

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return to_channels(torch.stack([prepare_image(im, self.size) for im in images]), self.channels)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.net.embed(batch), None
