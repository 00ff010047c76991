"""Findings <-> judge training targets, the judge's loss, and judge outputs -> findings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from synthmed.findings.schema import BrainMRIFindings

IGNORE = -1  # target of a head whose attribute the reference does not state


def findings_targets(findings: Sequence[BrainMRIFindings],
                     attributes: dict[str, tuple[object, ...]]) -> dict[str, torch.Tensor]:
    """Targets of a list of findings.

    Returns:
        "tumor_present": (N,) float 0/1; each attribute: (N,) int64 class index, or
        ``IGNORE`` where there is no tumour or the attribute is unset.

    Raises:
        ValueError: a finding has a value the judge has no class for.
    """
    out: dict[str, torch.Tensor] = {"tumor_present": torch.tensor([float(f.tumor_present) for f in findings])}
    for name, values in attributes.items():
        idx = []
        for f in findings:
            value = getattr(f, name, None) if f.tumor_present else None
            if value is None:
                idx.append(IGNORE)
            elif value in values:
                idx.append(values.index(value))
            else:
                raise ValueError(f"{name}={value!r} is not one of the judge's values {list(values)}")
        out[name] = torch.tensor(idx, dtype=torch.long)
    return out


def lesion_map_targets(masks: Sequence[torch.Tensor | None], map_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft lesion-map targets: the lesion fraction of each map cell.

    Args:
        masks: Per row a (1, S, S) float mask in [0, 1] already padded and resized like its
            image, or None when the row has no mask.
        map_size: Side of the judge's lesion map.

    Returns:
        (N, 1, map_size, map_size) float16 targets (zeros where no mask) and an (N,) bool
        tensor saying which rows have one.
    """
    maps = torch.zeros(len(masks), 1, map_size, map_size, dtype=torch.float16)
    valid = torch.zeros(len(masks), dtype=torch.bool)
    for i, m in enumerate(masks):
        if m is None:
            continue
        maps[i] = F.adaptive_avg_pool2d(m.float().unsqueeze(0), map_size)[0].to(torch.float16)
        valid[i] = True
    return maps, valid


def balanced_map_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lesion-map BCE with lesion and background cells weighted equally *within each image*.

    ``target`` holds the lesion fraction of each cell. Per image, the lesion term is averaged
    over its lesion mass and the background term over its background mass, so a 10 mm
    tumour counts as much as a 50 mm one and the rare lesion cells as much as the rest.
    """
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos = -(target * log_p).flatten(1).sum(1) / target.flatten(1).sum(1).clamp_min(1e-6)
    neg = -((1 - target) * log_not_p).flatten(1).sum(1) / (1 - target).flatten(1).sum(1).clamp_min(1e-6)
    has_lesion = (target.flatten(1).sum(1) > 0).to(logits.dtype)
    return (has_lesion * pos + neg).mean()


def judge_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], *,
               map_weight: float = 1.0, head_weight: float = 2.0) -> torch.Tensor:
    """Presence BCE + dense lesion-map loss (rows with masks) + mean masked cross-entropy of the heads.

    Each attribute's cross-entropy averages over the rows that state it; a batch where no
    row states an attribute contributes 0 for it (never NaN). The heads' losses are
    averaged, not summed, so that eight heads at chance do not drown the lesion map, which
    everything else depends on.
    """
    loss = F.binary_cross_entropy_with_logits(outputs["tumor_present"], targets["tumor_present"].float())
    valid = targets.get("map_valid")
    if map_weight and valid is not None and bool(valid.any()):
        pred, want = outputs["lesion_map"][valid], targets["lesion_map"][valid].float()
        loss = loss + map_weight * balanced_map_loss(pred, want)
    heads = [name for name in targets if name not in ("tumor_present", "lesion_map", "map_valid")
             and name in outputs]
    for name in heads:
        want = targets[name]
        keep = want != IGNORE
        if bool(keep.any()):
            loss = loss + head_weight / len(heads) * F.cross_entropy(outputs[name][keep], want[keep])
    return loss


def best_threshold(presence_logits: torch.Tensor, present: torch.Tensor) -> float:
    """The presence probability threshold that maximises accuracy (ties: the one nearest 0.5)."""
    probs = torch.sigmoid(presence_logits.float())
    candidates = torch.cat([torch.tensor([0.5]), probs]).clamp(1e-4, 1 - 1e-4).unique()
    acc = torch.stack([((probs >= t).float() == present.float()).float().mean() for t in candidates])
    best = candidates[acc >= acc.max() - 1e-9]
    return float(best[(best - 0.5).abs().argmin()])


def outputs_to_findings(outputs: dict[str, torch.Tensor], attributes: dict[str, tuple[object, ...]],
                        threshold: float = 0.5) -> list[BrainMRIFindings]:
    """Judge outputs -> one :class:`BrainMRIFindings` per image.

    No tumour when the presence probability is below ``threshold``; otherwise every
    attribute is its head's most likely value, and orientation is left unset for a round
    tumour (a circle has no long axis, as in the phantom's ground truth).
    """
    present = torch.sigmoid(outputs["tumor_present"]) >= threshold
    choice = {name: outputs[name].argmax(dim=1).tolist() for name in attributes if name in outputs}
    out = []
    for i, p in enumerate(present.tolist()):
        if not p:
            out.append(BrainMRIFindings(tumor_present=False))
            continue
        fields = {name: attributes[name][idx[i]] for name, idx in choice.items()}
        if fields.get("shape") == "round":
            fields["orientation"] = None
        out.append(BrainMRIFindings(tumor_present=True, **fields))
    return out
