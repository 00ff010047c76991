"""Randomness as a pure function of (seed, stage, step, micro-batch, rank).

Every random draw of a training step (which images, which captions, crops, noise,
timesteps, context dropout) comes from a generator seeded by the step's coordinates, not
from a stream that advances with the run. A resumed run therefore draws exactly what the
uninterrupted run drew at the same step, whatever happened before the restart, and two
processes never share draws.
"""

from __future__ import annotations

import torch

from synthmed.utils.seeding import derive_seed

__all__ = ["EpochSampler", "derive_seed", "stage_key", "step_generator"]

_STAGE_KEYS = {"autoencoder": 1, "unet": 2, "latents": 3, "samples": 4,
               # fine-tuning of pretrained pipelines (synthmed.train.finetune)
               "lora": 11, "textual_inversion": 12, "kandinsky_prior": 13, "kandinsky_decoder": 14,
               "kandinsky3": 15, "validation": 16, "decoder_gan": 17, "controlnet": 18,
               "segmenter": 19}


def stage_key(stage: str) -> int:
    """The integer key of a named stage."""
    return _STAGE_KEYS[stage]


def step_generator(seed: int, stage: str, step: int, micro: int = 0, rank: int = 0) -> torch.Generator:
    """A CPU generator for one micro-batch of one step on one process."""
    return torch.Generator().manual_seed(derive_seed(seed, stage_key(stage), step, micro, rank))


class EpochSampler:
    """Which dataset items a micro-batch holds, without any state.

    Items are visited in a fresh permutation each epoch (seeded by the epoch number), and
    the global position of item ``j`` of micro-batch ``micro`` of step ``step`` on process
    ``rank`` is ``((step * grad_accum + micro) * world + rank) * batch_size + j``.
    """

    def __init__(self, num_items: int, *, seed: int, stage: str, batch_size: int, grad_accum: int = 1,
                 world: int = 1):
        if num_items < 1:
            raise ValueError("EpochSampler needs at least one item")
        self.n = num_items
        self.seed = seed
        self.stage = stage
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.world = world
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        perm = self._perms.get(epoch)
        if perm is None:
            g = torch.Generator().manual_seed(derive_seed(self.seed, stage_key(self.stage), 10**9 + epoch))
            perm = torch.randperm(self.n, generator=g)
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            self._perms[epoch] = perm
        return perm

    def indices(self, step: int, micro: int = 0, rank: int = 0) -> torch.Tensor:
        """(batch_size,) int64 item indices of one micro-batch."""
        start = ((step * self.grad_accum + micro) * self.world + rank) * self.batch_size
        pos = torch.arange(start, start + self.batch_size)
        out = torch.empty(self.batch_size, dtype=torch.long)
        for epoch in torch.unique(pos // self.n).tolist():
            sel = (pos // self.n) == epoch
            out[sel] = self._perm(epoch)[pos[sel] % self.n]
        return out
