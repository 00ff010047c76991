"""The localiser: stage decoders over CLIP patch tokens, compared with text features.

Seed 003: intermediate patch features of the vision tower are not in CLIP's joint space,
so one decoder per stage (linear -> LeakyReLU -> linear) maps them there; the similarity
of each mapped patch with the normal/abnormal text features ``Ft`` gives a per-stage
anomaly map, and the stages' maps (upsampled) are combined into the pixel anomaly map.
The image score is CLIP's zero-shot ``s = softmax(Fc · Ftᵀ)``, abnormal column.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def centred_text(text: torch.Tensor) -> torch.Tensor:
    """``Ft`` (2, C) centred on its mean and re-normalised: normal and abnormal become antipodal.

    A two-class softmax of ``x · Ft`` only depends on ``x · (t_abnormal - t_normal)``, and
    centring keeps that direction (it only rescales the difference), so rankings of the
    zero-shot score do not change; the logits get the full range of the temperature.
    """
    return F.normalize(text - text.mean(dim=0, keepdim=True), dim=-1)


def image_loss(score: torch.Tensor, labels: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary cross-entropy of image scores (B,) in [0, 1] against image labels (1 tumour, 0 none).

    Not in seed 003, whose image score is never trained. Training the score the model
    reports (see :func:`image_scores`) is what makes it usable with the small from-scratch
    backbone: on the map maximum it pushes down the strongest false-positive blob of each
    healthy slice, which the pixel losses barely see (docs/localization.md).
    """
    return F.binary_cross_entropy(score.clamp(eps, 1 - eps), labels.to(score.dtype))


class StageDecoder(nn.Module):
    """linear -> LeakyReLU -> linear: (B, L, D) patch tokens -> (B, L, C) joint-space features."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, negative_slope: float = 0.01):
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.LeakyReLU(negative_slope)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(tokens)))


class StageDecoders(nn.Module):
    """One :class:`StageDecoder` per stage, and the maps they give.

    Args:
        num_stages: Number of stages (intermediate layers).
        in_dim: Width of the vision tower's tokens.
        out_dim: Width of the joint space (the text features' width).
        hidden_dim: Width of the hidden layer (default ``out_dim``).
        temperature: Softmax temperature of the patch-text similarities.
        center_text: Compare the patches with the text features centred on their mean and
            re-normalised (normal and abnormal become antipodal). The two-class softmax only
            depends on ``z · (t_abnormal - t_normal)``; when the backbone's two text features
            are nearly parallel (a small from-scratch CLIP: cosine 0.99) that difference is so
            short that the maps cannot leave 0.5 +- a little and the decoders barely learn.
            Centring keeps the direction and fixes its length (``False`` = seed 003 as published).
    """

    def __init__(self, num_stages: int, in_dim: int, out_dim: int, hidden_dim: int | None = None,
                 temperature: float = 0.07, center_text: bool = False):
        super().__init__()
        self.decoders = nn.ModuleList(StageDecoder(in_dim, out_dim, hidden_dim) for _ in range(num_stages))
        self.temperature = temperature
        self.center_text = center_text

    def joint_text(self, text: torch.Tensor) -> torch.Tensor:
        """The text features the patches (and the image score) are compared with: ``Ft``, centred if asked."""
        return centred_text(text) if self.center_text else text

    def stage_probs(self, stages: list[torch.Tensor], text: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
        """Per-stage (normal, abnormal) probability maps.

        Args:
            stages: Per stage (B, L, D) patch tokens, L = g*g patches.
            text: ``Ft`` (2, C) normalised text features, row 1 abnormal.
            size: (H, W) of the output maps.

        Returns:
            Per stage a (B, 2, H, W) tensor of softmax probabilities (bilinear upsampling of
            the patch logits, then softmax).
        """
        text = self.joint_text(text)
        out = []
        for dec, tokens in zip(self.decoders, stages, strict=True):
            b, n, _ = tokens.shape
            g = int(round(n**0.5))
            z = F.normalize(dec(tokens), dim=-1)  # (B, L, C)
            logits = (z @ text.t()) / self.temperature  # (B, L, 2)
            logits = logits.transpose(1, 2).reshape(b, 2, g, g)
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            out.append(logits.softmax(dim=1))
        return out


def combine_stages(probs: list[torch.Tensor]) -> torch.Tensor:
    """The pixel anomaly map: mean over stages of the abnormal probability, (B, H, W) in [0, 1]."""
    return torch.stack([p[:, 1] for p in probs]).mean(dim=0)


def zero_shot_score(fc: torch.Tensor, text: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """Seed 003's image score ``softmax(Fc · Ftᵀ)`` (with CLIP's logit scale), abnormal column: (B,)."""
    return (logit_scale * fc @ text.t()).softmax(dim=-1)[:, 1]


def map_maxima(anomaly_map: torch.Tensor) -> torch.Tensor:
    """(B,) maximum of each (H, W) map of a (B, H, W) batch."""
    return anomaly_map.flatten(1).amax(dim=1)


def image_scores(zero_shot: torch.Tensor, map_max: torch.Tensor, mode: str) -> torch.Tensor:
    """The image score of a ``mode``: ``zero-shot`` (seed 003), ``map-max`` or the ``mean`` of both.

    Args:
        zero_shot: (B,) zero-shot scores.
        map_max: (B,) maxima of the pixel anomaly maps (:func:`map_maxima`).
    """
    if mode == "zero-shot":
        return zero_shot
    if mode == "map-max":
        return map_max
    if mode == "mean":
        return 0.5 * (zero_shot + map_max)
    raise ValueError(f"unknown image score {mode!r}; expected zero-shot, map-max or mean")
