"""Named classifier recipes (architecture + optimisation) and the architecture registry.

``paper`` is seed 000's ViT exactly: image 512, patch 16, 3 channels, embedding 128,
4 heads, 1 layer, learnable positions, CLS pooling, dropout 0.3, MLP 512, 2 classes,
40 epochs, batch 16, AdamW lr 1e-4 with 625 warmup steps, weight decay 1e-3, gradient
clipping 1.0. ``cpu`` and ``quick`` are smaller ViTs for a CPU (see the docs for the
measured accuracy and time). ``channels: None`` means "as the data" (1 for grayscale).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from synthmed.classify.augment import AugmentConfig
from synthmed.classify.cnn import CNNConfig, ConvNet
from synthmed.classify.train import TrainConfig
from synthmed.classify.vit import ViT, ViTConfig
from synthmed.errors import ConfigError

ModelConfig = ViTConfig | CNNConfig

#: Architecture name -> (config class, builder).
ARCHITECTURES: dict[str, tuple[type[BaseModel], Callable[..., nn.Module]]] = {
    "vit": (ViTConfig, ViT),
    "cnn": (CNNConfig, ConvNet),
}


class ClassifierPreset(BaseModel):
    """A classifier recipe.

    Attributes:
        model: Architecture config (its ``arch`` field names the registry entry).
        train: Optimisation.
        channels: Input channels; None = as the data (1 for grayscale, 3 for RGB).
    """

    model_config = ConfigDict(extra="forbid")

    model: ViTConfig | CNNConfig = Field(discriminator="arch")
    train: TrainConfig
    channels: int | None = None


# Tumour vs no tumour does not depend on the side, so flips are allowed here (not in the judge).
_CPU_AUGMENT = AugmentConfig(hflip=True, max_shift=0.04, max_rotation_deg=8.0, max_scale=0.05, intensity=0.1)

PRESETS: dict[str, ClassifierPreset] = {
    "paper": ClassifierPreset(
        model=ViTConfig(image_size=512, patch_size=16, channels=3, dim=128, heads=4, depth=1, mlp_dim=512,
                        dropout=0.3, pool="cls", num_classes=2),
        train=TrainConfig(epochs=40, batch_size=16, lr=1e-4, warmup_steps=625, weight_decay=1e-3, grad_clip=1.0,
                          schedule="constant", patience=None, augment=AugmentConfig()),
        channels=3),
    # ViT with a convolutional stem (Xiao et al. 2021; two 3x3 convolutions per halving): 128 px,
    # 8x8 tokens of 16x16 pixels, 4 blocks, max pooling over the tokens (one token showing a
    # small lesion can decide). Measured in docs/evaluation-downstream.md.
    "cpu": ClassifierPreset(
        model=ViTConfig(image_size=128, patch_size=16, channels=1, dim=128, heads=4, depth=4, mlp_dim=256,
                        dropout=0.1, pool="max", stem="conv", stem_convs=2, num_classes=2),
        train=TrainConfig(epochs=60, batch_size=32, lr=1e-3, warmup_steps=200, weight_decay=0.05, grad_clip=1.0,
                          schedule="cosine", patience=15, augment=_CPU_AUGMENT)),
    "quick": ClassifierPreset(
        model=ViTConfig(image_size=32, patch_size=8, channels=1, dim=64, heads=4, depth=1, mlp_dim=128,
                        dropout=0.1, pool="cls", num_classes=2),
        train=TrainConfig(epochs=4, batch_size=32, lr=1e-3, warmup_steps=10, weight_decay=0.01, grad_clip=1.0,
                          schedule="cosine", patience=None, augment=AugmentConfig())),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> ClassifierPreset:
    """A deep copy of a named preset.

    Raises:
        ConfigError: listing the valid names.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown classifier preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name].model_copy(deep=True)


def build_classifier(config: ModelConfig) -> nn.Module:
    """Build the network named by ``config.arch``.

    Raises:
        ConfigError: listing the registered architectures.
    """
    if config.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {config.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    cls, builder = ARCHITECTURES[config.arch]
    if not isinstance(config, cls):
        raise ConfigError(f"architecture {config.arch!r} needs a {cls.__name__}, got {type(config).__name__}")
    return builder(config)
