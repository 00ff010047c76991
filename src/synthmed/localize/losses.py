"""Focal + dice loss of seed 003 (LOSS = DICE_LOSS + FOCAL_LOSS) on (normal, abnormal) maps."""

from __future__ import annotations

import torch


def focal_loss(probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, eps: float = 1e-6) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) of two-class probability maps.

    Args:
        probs: (B, 2, H, W) softmax probabilities, channel 1 abnormal.
        target: (B, H, W) float mask in {0, 1}.
    """
    p_true = torch.where(target > 0.5, probs[:, 1], probs[:, 0]).clamp(eps, 1.0)
    return (-(1.0 - p_true) ** gamma * torch.log(p_true)).mean()


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2|P∩T| + eps) / (|P| + |T| + eps)`` over the whole batch at once.

    Batch-level, not per image: on an image without lesion (T empty) a per-image Dice is
    ``1 - eps / (|P| + eps)``, which stays ~1 until every pixel's probability is ~0 and
    gives almost no gradient, so a batch with many healthy slices adds a flat constant
    (seen as a training loss stuck at ~5.7 on the phantom). Pooling the batch's pixels
    makes the healthy images' false positives count against the batch's lesions.

    Args:
        prob: (B, H, W) probabilities.
        target: (B, H, W) masks in {0, 1}.
    """
    inter = (prob * target).sum()
    return 1.0 - (2.0 * inter + eps) / (prob.sum() + target.sum() + eps)


def localization_loss(stage_probs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Sum over stages of focal + dice (batch-level dice on the abnormal and on the normal channel)."""
    total = target.new_zeros(())
    for p in stage_probs:
        total = total + focal_loss(p, target) + dice_loss(p[:, 1], target) + dice_loss(p[:, 0], 1.0 - target)
    return total
