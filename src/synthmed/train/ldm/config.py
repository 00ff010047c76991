"""The typed configuration of ``synthmed train ldm`` (YAML, flags or Python).

The defaults are the offline demo model: 128 px grayscale slices, an ``AutoencoderKL``
with 8x downsampling to 16x16x4 latents, a 5 M-parameter cross-attention UNet trained with
v-prediction and the packaged MiniLM text encoder; ``configs/ldm-demo.yaml`` spells them out and
``configs/ldm-msdm.yaml`` is the paper-sized MSDM (256 px, CLIP ViT-L/14).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmed.models.ldm import AutoencoderConfig, NoiseScheduleConfig, UNetConfig
from synthmed.models.text_encoders import DEFAULT_TEXT_ENCODER
from synthmed.train.ldm.augment import IntensityAugment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageConfig(_Strict):
    """Optimisation of one training stage (AdamW + linear warmup + cosine decay).

    ``max_steps`` counts optimizer steps; each takes ``grad_accum`` micro-batches of
    ``batch_size`` images per process. With a time budget the step count is estimated
    from the measured speed and ``max_steps`` only caps it.
    """

    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final lr as a fraction of lr")
    weight_decay: float = Field(0.01, ge=0)
    adam_eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    ema_decay: float | None = Field(None, gt=0, lt=1, description="None: no EMA weights")


class AutoencoderTrainConfig(StageConfig):
    """Stage 1: the ``AutoencoderKL``, trained on L1 + edge + KL losses.

    No pretrained perceptual network is available offline; an L1 loss on image gradients
    (the edge term) keeps boundaries sharp instead. Training on random crops is 4x cheaper
    at half the side and the network is fully convolutional.
    """

    model: AutoencoderConfig = AutoencoderConfig()
    max_steps: int | None = Field(1500, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    crop_size: int | None = Field(64, ge=8, description="train on random crops of this side; None: whole images")
    kl_weight: float = Field(1e-6, ge=0)
    edge_weight: float = Field(0.5, ge=0)
    decoder_noise: float = Field(0.0, ge=0, description="train the decoder on latents plus Gaussian noise of up to "
                                 "this many latent standard deviations (uniform per image), so that the small "
                                 "errors of a briefly trained UNet decode to plausible tissue, not lesion-like blobs")


class UNetTrainConfig(StageConfig):
    """Stage 2: the conditional UNet on cached latents (MSDM section 4.2)."""

    model: UNetConfig = UNetConfig()
    noise: NoiseScheduleConfig = NoiseScheduleConfig()
    max_steps: int | None = Field(5000, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0, description="high for minutes-long CPU runs; MSDM-scale runs use 1e-4")
    warmup_steps: int = Field(100, ge=0)
    context_dropout: float = Field(0.1, ge=0, le=1, description="probability of training on the empty prompt")
    use_paraphrases: bool = Field(True, description="sample the caption among text + paraphrases")
    min_snr_gamma: float | None = Field(None, gt=0, description="Min-SNR-gamma loss weighting; None: plain MSE. "
                                        "With v-prediction it all but ignores the noisiest timesteps, where a short "
                                        "run must learn the layout, so the demo leaves it off; MSDM uses 5")
    lesion_weight: float = Field(4.0, ge=0, description="extra loss weight on lesion pixels when every row has a "
                                 "mask: the error there counts (1 + lesion_weight) times; 0 turns it off (as MSDM)")
    condition: Literal["text", "mask", "mask+head"] = Field(
        "text", description="text: a text-to-image model; mask: text and the lesion mask (every training row needs "
        "a mask; an empty mask is a healthy slice); mask+head: also the head outline found in each image. The "
        "conditioning picture enters as its VAE latent, concatenated to the noisy latent in the layout of "
        "diffusers' inpainting UNets, so the folder is a StableDiffusionInpaintPipeline called with "
        "image=PICTURE, mask_image=BLACK (docs/mask-conditioning.md)")
    augment: IntensityAugment | None = Field(None, description="brightness/contrast augmentation (MSDM), as "
                                             "cached latent copies; None: off. No flips: prompts name sides")
    ema_decay: float | None = Field(0.999, gt=0, lt=1)
    export_ema: bool = Field(True, description="save the EMA weights (not the raw ones) in the pipeline")


class LDMTrainConfig(_Strict):
    """Everything ``train_ldm`` needs.

    Attributes:
        data: A dataset directory whose rows have ``text``.
        out: The model directory (a diffusers pipeline folder when done).
        minutes: A wall-clock budget for both stages together; ``autoencoder_fraction``
            of it goes to stage 1, the rest (minus latent caching) to stage 2.
        max_steps: Shorthand that caps both stages' ``max_steps``.
    """

    data: Path
    out: Path
    seed: int = 0
    resolution: int | None = Field(128, ge=8, description="square side in pixels; None: the data's own size")
    split: str | None = Field("train", description="train on this split when rows have one; None: all rows")
    text_encoder: str = DEFAULT_TEXT_ENCODER
    max_text_length: int | None = Field(64, ge=4)
    minutes: float | None = Field(None, gt=0)
    autoencoder_fraction: float = Field(0.3, gt=0, lt=1)
    max_steps: int | None = Field(None, ge=1)
    pretrained_autoencoder: str | None = Field(
        None, description="use this trained AutoencoderKL (a folder, a pipeline folder with vae/, or builtin:<name>, "
        "e.g. builtin:phantom-vae-128) and skip stage 1; the autoencoder settings are then unused")
    autoencoder: AutoencoderTrainConfig = AutoencoderTrainConfig()
    unet: UNetTrainConfig = UNetTrainConfig()
    acquisition_noise: bool = Field(True, description="fit the training images' Rician scanner noise (grayscale) "
                                    "and store it beside the pipeline (noise_model.json); synthmed generate draws "
                                    "fresh noise of that law onto each image, which no latent can carry")
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    sample_every: int | None = Field(None, ge=1, description="UNet steps between sample grids (always one at the end)")
    num_samples: int = Field(8, ge=1)
    sample_steps: int = Field(25, ge=1)
    sample_guidance_scale: float = Field(3.0, ge=1)
    calibration_steps: int = Field(5, ge=2, description="steps timed to size a time-budgeted stage")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None leaves torch's default. On a "
                                "busy shared CPU one thread per process is often faster")
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    tensorboard: bool = True

    @model_validator(mode="after")
    def _check(self) -> LDMTrainConfig:
        if self.pretrained_autoencoder is None and self.resolution is not None \
                and self.resolution % self.autoencoder.model.downsample_factor:
            raise ValueError(f"resolution {self.resolution} is not a multiple of the autoencoder's downsample "
                             f"factor {self.autoencoder.model.downsample_factor}")
        for name in ("autoencoder", "unet") if self.pretrained_autoencoder is None else ("unet",):
            if self.minutes is None and self.stage_max_steps(getattr(self, name)) is None:
                raise ValueError(f"{name}.max_steps is unset and no time budget (minutes) is given")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")
        return self

    def stage_max_steps(self, stage: StageConfig) -> int | None:
        """A stage's step cap after the top-level ``max_steps`` shorthand."""
        return self.max_steps if self.max_steps is not None else stage.max_steps
