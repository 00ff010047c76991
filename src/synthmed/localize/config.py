"""Typed settings of ``synthmed localize train`` with named presets.

``paper`` is seed 003 as published: a pretrained CLIP ViT-L/14 kept frozen, decoders on
layers 6/12/18/24, Adam lr 0.01, betas (0.5, 0.999), batch 16, 3 epochs, the zero-shot
image score. ``cpu`` is the offline CPU recipe with the small from-scratch CLIP backbone
(whole vision tower fine-tuned with the decoders, centred text features, a trained image
score, augmented batches, a decaying tail of the learning rate, averaged test-time views;
measured figures in docs/localization.md); ``quick`` is a
smoke-test size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.classify.augment import AugmentConfig
from synthmed.errors import ConfigError

ImageScore = Literal["zero-shot", "map-max", "mean"]
PRESET_NAMES = ("paper", "cpu", "quick")

#: Flips are fine here: a mask flips with its image and the image label ignores the side.
_CPU_AUGMENT = AugmentConfig(hflip=True, max_shift=0.05, max_rotation_deg=10.0, max_scale=0.05, intensity=0.1)

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"backbone": "openai/clip-vit-large-patch14", "epochs": 3, "batch_size": 16, "lr": 0.01,
              "betas": (0.5, 0.999), "train_backbone_layers": 0, "backbone_lr": 1e-4, "image_score": "zero-shot",
              "center_text": False, "image_loss_weight": 0.0, "lr_decay_epochs": 0, "test_time_flip": False,
              "test_time_shift": 0},
    "cpu": {"backbone": "scratch", "epochs": 150, "batch_size": 16, "lr": 1e-3, "betas": (0.9, 0.999),
            "train_backbone_layers": 4, "backbone_lr": 1e-3, "image_score": "mean", "center_text": True,
            "image_loss_weight": 1.0, "augment": _CPU_AUGMENT, "lr_decay_epochs": 20, "test_time_flip": True,
            "test_time_shift": 2, "scratch": {"epochs": 8}},
    "quick": {"backbone": "scratch", "epochs": 1, "batch_size": 16, "lr": 0.01, "betas": (0.5, 0.999),
              "train_backbone_layers": 0, "backbone_lr": 1e-4, "image_score": "mean", "center_text": True,
              "image_loss_weight": 1.0, "lr_decay_epochs": 0, "test_time_flip": False, "test_time_shift": 0,
              "scratch": {"epochs": 1, "image_size": 64, "hidden_size": 32, "num_layers": 2, "num_heads": 2,
                          "text_hidden_size": 32, "text_layers": 1, "projection_dim": 32}},
}


class LocalizeTrainConfig(BaseModel):
    """Settings of :func:`synthmed.localize.train.train_localizer`.

    Fields left as None take the preset's value.
    """

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path
    preset: Literal["paper", "cpu", "quick"] = "paper"
    backbone: str | None = Field(None, description="CLIP hub id or folder, or 'scratch' to pretrain one")
    stage_layers: list[int] | None = None
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    train_backbone_layers: int | None = Field(None, ge=0, description="also train the last N vision layers")
    backbone_lr: float | None = Field(None, gt=0)
    lr_decay_epochs: int | None = Field(
        None, ge=0, description="the last N epochs (at most all of them) decay every learning rate to zero on a "
                                "cosine; constant before. 0 = constant throughout (seed 003)")
    image_score: ImageScore | None = None
    temperature: float = Field(0.07, gt=0)
    decoder_hidden: int | None = Field(None, ge=1)
    center_text: bool | None = Field(None, description="centre Ft before the patch-text softmax (model.py)")
    image_loss_weight: float | None = Field(
        None, ge=0, description="weight of the image-level loss (binary cross-entropy of the image_score against "
                                "the image label; with a zero-shot or mean score it trains the visual projection "
                                "too); 0 = seed 003")
    augment: AugmentConfig | None = Field(
        None, description="random flips, shifts, rotations, zoom and intensity changes of the training batches "
                          "(masks follow the geometry); none in seed 003")
    test_time_flip: bool | None = Field(
        None, description="the saved localiser also looks at each image's left-right mirror and averages "
                          "(localizer.prediction_views); none in seed 003")
    test_time_shift: int | None = Field(
        None, ge=0, description="the saved localiser also looks at each image shifted by this many input pixels "
                                "up, down, left and right, and averages; 0 = none (seed 003)")
    train_split: str = "train"
    val_split: str | None = "val"
    scratch: dict[str, Any] = Field(default_factory=dict, description="BackbonePretrainConfig overrides")
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: str = Field("auto", description="torch device: auto (the GPU when present), cpu, cuda...")
    checkpoint_every: int = Field(50, ge=1, description="optimizer steps between checkpoints")
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    @model_validator(mode="after")
    def _apply_preset(self) -> LocalizeTrainConfig:
        preset = PRESETS[self.preset]
        for key, value in preset.items():
            if key == "scratch":
                self.scratch = {**value, **self.scratch}
            elif getattr(self, key) is None:
                setattr(self, key, value)
        if self.resume and self.overwrite:
            raise ConfigError("resume and overwrite exclude each other")
        return self
