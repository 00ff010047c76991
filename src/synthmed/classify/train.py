"""A readable supervised training loop: AdamW, linear warmup, gradient clipping, early stopping.

The loop is shared by the downstream classifier and the findings judge; what differs
(the loss and the validation score) comes in as functions. Read it top to bottom::

    for each epoch:
        for each shuffled batch:   lr(step) -> augment -> forward -> loss -> backward -> clip -> step
        validate -> keep the best weights -> stop after `patience` epochs without improvement
    restore the best weights
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm.auto import tqdm

from synthmed.classify.augment import AugmentConfig, augment_batch
from synthmed.classify.data import to_channels
from synthmed.utils.optim import fused_option

logger = logging.getLogger(__name__)

Targets = torch.Tensor | dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor | dict[str, torch.Tensor], Targets], torch.Tensor]
ScoreFn = Callable[[torch.Tensor | dict[str, torch.Tensor], Targets], float]


class TrainConfig(BaseModel):
    """Optimisation settings (defaults: seed 000's ViT recipe).

    Attributes:
        epochs: Maximum passes over the training data.
        batch_size: Images per optimizer step.
        lr: Peak learning rate of AdamW.
        warmup_steps: Linear warmup from 0 to ``lr`` over this many optimizer steps.
        schedule: After warmup: "constant" or "cosine" decay to 0 at the last step.
        weight_decay: AdamW decoupled weight decay (Loshchilov & Hutter 2019).
        grad_clip: Clip the global gradient norm to this value (None: no clipping).
        patience: Stop after this many epochs without a better validation loss (None: never).
        augment: Random augmentation of training batches.
        eval_batch_size: Images per forward pass when predicting.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(40, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(625, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    weight_decay: float = Field(1e-3, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    patience: int | None = Field(10, ge=1)
    augment: AugmentConfig = AugmentConfig()
    eval_batch_size: int = Field(128, ge=1)


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes:
        best_epoch: 1-based epoch whose weights were kept (the last one without validation).
        epochs_run: Epochs actually run (fewer than configured after early stopping).
        history: One dict per epoch: train_loss, val_loss, val_score, lr.
    """

    best_epoch: int = 0
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup, then constant or cosine."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _take(targets: Targets, idx: torch.Tensor, device: torch.device) -> Targets:
    if isinstance(targets, dict):
        return {k: v[idx].to(device) for k, v in targets.items()}
    return targets[idx].to(device)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _concat(outputs: list[torch.Tensor | dict[str, torch.Tensor]]) -> torch.Tensor | dict[str, torch.Tensor]:
    if isinstance(outputs[0], dict):
        return {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]}  # type: ignore[index]
    return torch.cat(outputs)  # type: ignore[arg-type]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, channels: int, batch_size: int = 128
            ) -> torch.Tensor | dict[str, torch.Tensor]:
    """Model outputs for (N, C, S, S) images, in eval mode, batch by batch on the model's
    device; the outputs are on the CPU."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    outs = [_to_cpu(model(to_channels(images[i:i + batch_size].to(device), channels)))
            for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return _concat(outs)


def _to_cpu(out: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor | dict[str, torch.Tensor]:
    if isinstance(out, dict):
        return {k: v.cpu() for k, v in out.items()}
    return out.cpu()


def fit(
    model: nn.Module,
    images: torch.Tensor,
    targets: Targets,
    cfg: TrainConfig,
    *,
    channels: int,
    loss_fn: LossFn,
    val: tuple[torch.Tensor, Targets] | None = None,
    score_fn: ScoreFn | None = None,
    spatial_targets: tuple[str, ...] = (),
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` in place and leave it with its best validation weights.

    Training runs on the model's device (move the model first, e.g. ``model.to("cuda")``);
    images and targets stay where they are and are moved a batch at a time.

    Args:
        model: Any module mapping (B, channels, S, S) float images to outputs ``loss_fn`` reads.
        images: (N, C, S, S) training images in [0, 1] (float16 or float32).
        targets: (N,) tensor or dict of (N,) tensors, indexed like ``images``.
        cfg: Optimisation settings.
        channels: Channels the model expects (batches are converted, see ``to_channels``).
        loss_fn: (outputs, targets) -> scalar loss.
        val: Optional validation (images, targets) for early stopping and model selection
            (lowest validation loss).
        score_fn: Optional (outputs, targets) -> float logged for validation (e.g. accuracy).
        spatial_targets: Keys of ``targets`` holding dense (N, K, h, w) maps (e.g. lesion
            masks) that must get the same random shifts/rotations as their images.
        seed: Seeds the shuffling and augmentation (weights are initialised by the caller).
        progress: Show a progress bar over epochs.
    """
    n = len(images)
    if n == 0:
        raise ValueError("no training images")
    gen = torch.Generator().manual_seed(seed)
    device = model_device(model)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # Standard practice: no weight decay on biases, norms, embeddings and tokens.
        (no_decay if p.ndim < 2 or "pos_embed" in name or "cls_token" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, **fused_option(groups))
    result = FitResult()
    best_loss, best_state, stale, step = math.inf, None, 0, 0
    bar = tqdm(range(cfg.epochs), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for start in range(0, n, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            lr = lr_at(step, cfg, total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            tb = _take(targets, idx, device)
            dense = {k: tb[k].float() for k in spatial_targets} if isinstance(tb, dict) else {}
            xb, dense = augment_batch(to_channels(images[idx].to(device), channels), cfg.augment, gen, dense)
            if dense:
                tb = {**tb, **dense}  # type: ignore[dict-item]
            loss = loss_fn(model(xb), tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        record = {"epoch": epoch + 1, "train_loss": total / seen, "lr": lr}
        if val is not None and len(val[0]):
            out = predict(model, val[0], channels, cfg.eval_batch_size)
            val_loss = float(loss_fn(out, val[1]))
            record["val_loss"] = val_loss
            if score_fn is not None:
                record["val_score"] = score_fn(out, val[1])
            if val_loss < best_loss - 1e-6:
                best_loss, stale, result.best_epoch = val_loss, 0, epoch + 1
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        else:
            result.best_epoch = epoch + 1
        result.history.append(record)
        result.epochs_run = epoch + 1
        bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k != "epoch"})
        logger.debug("%s epoch %d: %s", desc, epoch + 1, record)
        if cfg.patience is not None and stale >= cfg.patience:
            logger.debug("%s: early stop after epoch %d (best %d)", desc, epoch + 1, result.best_epoch)
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
