"""Fine-tuning pretrained diffusers pipelines: LoRA (SD 1.5, SDXL) and textual inversion.

Entry points: :func:`train_lora`, :func:`train_textual_inversion`. The shared machinery
(data, latent cache, loss, loop, checkpoints, validation) is in :mod:`.core`; the SD / SDXL
differences live in :mod:`.families`. See docs/finetune.md.
"""

from synthmed.train.finetune.config import (
    ConceptSpec,
    FinetuneOptimConfig,
    LoraSpec,
    LoraTrainConfig,
    TextualInversionConfig,
)
from synthmed.train.finetune.lora import train_lora
from synthmed.train.finetune.textual_inversion import train_textual_inversion

__all__ = [
    "ConceptSpec",
    "FinetuneOptimConfig",
    "LoraSpec",
    "LoraTrainConfig",
    "TextualInversionConfig",
    "train_lora",
    "train_textual_inversion",
]
