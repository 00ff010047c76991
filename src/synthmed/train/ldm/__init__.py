"""Training a text-conditioned latent diffusion model from scratch (MSDM, seed 001 section 4.2).

Entry point: :func:`train_ldm` with an :class:`LDMTrainConfig`.
"""

from synthmed.train.ldm.config import AutoencoderTrainConfig, LDMTrainConfig, StageConfig, UNetTrainConfig
from synthmed.train.ldm.loop import TrainingError
from synthmed.train.ldm.train import train_ldm

__all__ = [
    "AutoencoderTrainConfig",
    "LDMTrainConfig",
    "StageConfig",
    "TrainingError",
    "UNetTrainConfig",
    "train_ldm",
]
