"""One training stage, read top to bottom: resume, steps, budget, checks, checkpoints.

The loop is shared by the autoencoder and the UNet stages. It receives the module it
trains, its optimizer and a ``loss_fn(model, step, micro) -> loss`` that draws its own
randomness from the step coordinates (see :mod:`synthmed.train.ldm.randomness`), so a
run resumed from a checkpoint retraces the uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

import synthmed.train.ldm.checkpoint as ckpt
from synthmed.errors import TrainingError
from synthmed.train.ldm.config import StageConfig
from synthmed.train.ldm.optim import EMA, build_lr_scheduler

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, int, int], torch.Tensor]


@dataclass
class StagePlan:
    """How long a stage runs and where it keeps its checkpoints.

    Attributes:
        name: "autoencoder" or "unet" (log tags and messages).
        max_steps: Optimizer steps to run; with ``deadline`` only a cap.
        deadline: ``time.monotonic()`` value by which the stage must stop, or None.
        checkpoint_dir: Where ``step-…`` checkpoints go.
        digest: Fingerprint of the configuration; a checkpoint with another one is refused.
        trainable_only: Checkpoint only the parameters that require gradients (adapters on a
            frozen pretrained base); the base itself is reloaded from its own files on resume.
    """

    name: str
    max_steps: int | None
    deadline: float | None
    checkpoint_dir: Path
    digest: str
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    calibration_steps: int = 5
    safety: float = 0.95
    recalibrate_every: int = 20
    recalibrate_window: int = 50
    progress: bool = True
    resume: bool = False
    images_per_step: int = 1
    trainable_only: bool = False


@dataclass
class StageResult:
    steps: int
    total_steps: int
    seconds: float
    images_per_second: float
    last_loss: float
    stopped_by: str
    resumed_from: int | None = None
    losses: list[float] = field(default_factory=list)
    #: Median and fastest wall time of one optimizer step in this run (the fastest is the figure
    #: least disturbed by other load on a shared machine); None when no step ran.
    median_step_seconds: float | None = None
    min_step_seconds: float | None = None


def _any_rank(accelerator, flag: bool) -> bool:
    """True on every process when ``flag`` is true on any of them."""
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() > 0)


def _from_main(accelerator, value):
    """The main process's ``value`` on every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def save_checkpoint(accelerator, plan: StagePlan, *, step: int, total: int | None, elapsed: float,
                    model, optimizer, scheduler, ema: EMA | None) -> Path:
    """Write a checkpoint of ``step`` on all processes (collective call)."""
    tmp = plan.checkpoint_dir / f".tmp-{ckpt.checkpoint_name(step)}"
    if accelerator.is_main_process:
        ckpt.begin_checkpoint(plan.checkpoint_dir, step)
    accelerator.wait_for_everyone()
    ckpt.write_rng(tmp, accelerator.process_index)
    if accelerator.is_main_process:
        ckpt.write_main(tmp, model=accelerator.unwrap_model(model), optimizer=optimizer, scheduler=scheduler,
                        ema_state=ema.state_dict() if ema else None,
                        state=ckpt.CheckpointState(step=step, total_steps=total, elapsed_s=elapsed,
                                                   digest=plan.digest, extra={"stage": plan.name}),
                        trainable_only=plan.trainable_only)
    accelerator.wait_for_everyone()
    final = plan.checkpoint_dir / ckpt.checkpoint_name(step)
    if accelerator.is_main_process:
        ckpt.commit_checkpoint(tmp, plan.keep_checkpoints)
    accelerator.wait_for_everyone()
    return final


def run_stage(accelerator, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: StageConfig,
              plan: StagePlan, loss_fn: LossFn, ema: EMA | None = None,
              on_step: Callable[[int], None] | None = None) -> StageResult:
    """Train ``model`` for one stage and leave its final weights in it (and in ``ema``).

    Args:
        accelerator: The ``accelerate.Accelerator`` the run uses.
        model: The module to train (not yet prepared).
        optimizer: Its optimizer (not yet prepared).
        cfg: Learning rate, warmup, accumulation, clipping.
        plan: Length, budget and checkpointing.
        loss_fn: ``loss_fn(prepared_model, step, micro)`` -> scalar loss of one micro-batch.
        ema: EMA weights updated after every optimizer step, if any.
        on_step: Called on every process after each optimizer step (e.g. sample grids).

    Raises:
        TrainingError: a loss or gradient norm is NaN or infinite; no checkpoint is written
            for that step and the newest checkpoint stays valid.
    """
    from tqdm.auto import tqdm

    total = plan.max_steps if plan.deadline is None else None
    scheduler = build_lr_scheduler(optimizer, cfg, total)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)

    step, resumed_from, elapsed_before = 0, None, 0.0
    latest = ckpt.latest_checkpoint(plan.checkpoint_dir) if plan.resume else None
    if latest is not None:
        state, ema_state = ckpt.load_checkpoint(latest, model=unwrapped, optimizer=optimizer, scheduler=scheduler,
                                                rank=accelerator.process_index, expected_digest=plan.digest,
                                                trainable_only=plan.trainable_only)
        if ema is not None and ema_state is not None:
            ema.load_state_dict(ema_state)
        step, resumed_from, elapsed_before = state.step, state.step, state.elapsed_s
        if plan.deadline is not None and state.total_steps is not None:
            total = state.total_steps  # a budgeted stage keeps the length it measured
            scheduler.lr_lambdas[0].total = total
        elif plan.deadline is None and state.total_steps not in (None, total):
            logger.warning("%s: checkpoint planned %s steps, now %s; the learning-rate schedule changes",
                           plan.name, state.total_steps, total)
        logger.info("%s: resumed from %s (step %d)", plan.name, latest, step)

    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total, initial=step, desc=plan.name, dynamic_ncols=True,
               disable=not (plan.progress and accelerator.is_local_main_process))
    t_start = time.monotonic()
    step_times: list[float] = []
    losses: list[float] = []
    smooth = None
    stopped_by = "max_steps"
    steps_this_run = 0
    t_prev = time.monotonic()
    while total is None or step < total:
        # A budgeted stage always takes at least one step, so it leaves usable weights.
        if plan.deadline is not None and step > 0 and _any_rank(accelerator, time.monotonic() >= plan.deadline):
            stopped_by = "time budget"
            break
        model.train()
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            sync = micro == cfg.grad_accum - 1
            ctx = contextlib.nullcontext() if sync else accelerator.no_sync(model)
            with ctx:
                with accelerator.autocast():
                    loss = loss_fn(model, step, micro)
                value = float(loss.detach())
                if _any_rank(accelerator, not math.isfinite(value)):
                    bar.close()
                    raise TrainingError(
                        f"{plan.name}: loss is {value} at step {step + 1} (micro-batch {micro}); stopping without "
                        f"saving. Newest good checkpoint: {ckpt.latest_checkpoint(plan.checkpoint_dir)}. "
                        f"Lower the learning rate (now {cfg.lr:g}) or turn off mixed precision.")
                accelerator.backward(loss / cfg.grad_accum)
                loss_sum += value / cfg.grad_accum
        grad_norm = None
        if cfg.max_grad_norm is not None:
            grad_norm = float(accelerator.clip_grad_norm_(params, cfg.max_grad_norm))
            if _any_rank(accelerator, not math.isfinite(grad_norm)):
                bar.close()
                raise TrainingError(f"{plan.name}: gradient norm is {grad_norm} at step {step + 1}; stopping "
                                    f"without saving. Lower the learning rate (now {cfg.lr:g}).")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_this_run += 1
        if ema is not None:
            ema.update(unwrapped, step)
        losses.append(loss_sum)
        smooth = loss_sum if smooth is None else 0.95 * smooth + 0.05 * loss_sum

        # Size a time-budgeted stage from its measured speed (the very first step is warm-up), and
        # re-size it as it goes: on a shared machine the speed changes, and the cosine schedule
        # should still end at the deadline.
        now = time.monotonic()
        step_times.append(now - t_prev)
        t_prev = now
        if plan.deadline is not None and steps_this_run > plan.calibration_steps and (
                total is None or steps_this_run % plan.recalibrate_every == 0):
            recent = step_times[1:][-plan.recalibrate_window:]
            per_step = sum(recent) / len(recent)
            estimate = step + int(max(0.0, plan.deadline - now) * plan.safety / per_step)
            if plan.max_steps is not None:
                estimate = min(estimate, plan.max_steps)
            new_total = max(step, _from_main(accelerator, estimate))
            if new_total != total:
                if total is None and accelerator.is_main_process:
                    logger.info("%s: %.0f ms/step -> %d steps in the time budget", plan.name, per_step * 1000,
                                new_total)
                total = new_total
                scheduler.lr_lambdas[0].total = total
                bar.total = total
                bar.refresh()

        if step % plan.log_every == 0 or step == total:
            logs = {f"{plan.name}/loss": loss_sum, f"{plan.name}/lr": scheduler.get_last_lr()[0]}
            if grad_norm is not None:
                logs[f"{plan.name}/grad_norm"] = grad_norm
            accelerator.log(logs, step=step)
        bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)
        bar.update(1)
        if step % plan.checkpoint_every == 0 and (total is None or step < total):
            save_checkpoint(accelerator, plan, step=step, total=total,
                            elapsed=elapsed_before + time.monotonic() - t_start, model=model,
                            optimizer=optimizer, scheduler=scheduler, ema=ema)
        if on_step is not None:
            on_step(step)
    bar.close()
    if plan.deadline is not None and stopped_by == "max_steps" and (plan.max_steps is None or step < plan.max_steps):
        stopped_by = "time budget"  # the planned length was sized to the budget
    seconds = time.monotonic() - t_start
    images = steps_this_run * plan.images_per_step
    result = StageResult(steps=step, total_steps=total if total is not None else step, seconds=seconds,
                         images_per_second=images / seconds if seconds > 0 else 0.0,
                         last_loss=losses[-1] if losses else float("nan"), stopped_by=stopped_by,
                         resumed_from=resumed_from, losses=losses,
                         median_step_seconds=statistics.median(step_times) if step_times else None,
                         min_step_seconds=min(step_times) if step_times else None)
    if accelerator.is_main_process:
        logger.info("%s: %d steps (%s) in %.0f s, %.1f images/s, last loss %.4f", plan.name, result.steps,
                    stopped_by, seconds, result.images_per_second, result.last_loss)
    return result
