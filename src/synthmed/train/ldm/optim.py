"""Optimizer, learning-rate schedule and EMA weights of a training stage."""

from __future__ import annotations

import math

import torch

from synthmed.train.ldm.config import StageConfig
from synthmed.utils.optim import fused_option


class WarmupCosine:
    """Learning-rate factor: linear warmup to 1, then cosine decay to ``min_ratio``.

    A callable object rather than a lambda so that ``LambdaLR.state_dict`` saves it, and so
    that a time-budgeted stage can fix ``total`` once it has measured its speed (until
    then, and after ``total``, the factor is the warmup ramp or ``min_ratio``).
    """

    def __init__(self, warmup: int, total: int | None, min_ratio: float = 0.0):
        self.warmup = int(warmup)
        self.total = total
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.total is None:
            return 1.0
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params, cfg: StageConfig) -> torch.optim.Optimizer:
    """AdamW with the stage's learning rate, weight decay and epsilon (fused where possible)."""
    params = list(params)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps,
                             **fused_option(params))


def build_lr_scheduler(optimizer: torch.optim.Optimizer, cfg: StageConfig,
                       total: int | None) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup + cosine ``LambdaLR`` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(cfg.warmup_steps, total, cfg.min_lr_ratio))


class EMA:
    """Exponential moving average of a module's trainable parameters.

    The decay warms up as ``min(decay, (1 + step) / (10 + step))`` so that a short run is
    not dominated by its random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow = {n: p.detach().clone().float() for n, p in model.named_parameters() if p.requires_grad}

    def effective_decay(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = self.effective_decay(step)
        pairs = [(self.shadow[name], p.detach().float()) for name, p in model.named_parameters() if name in self.shadow]
        if pairs:
            torch._foreach_lerp_([s for s, _ in pairs], [p for _, p in pairs], 1.0 - d)  # one kernel per dtype/device

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[0]!r}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite ``model``'s parameters with the averaged ones."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name].to(p.dtype))
