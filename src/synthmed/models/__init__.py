"""Network builders and pretrained-model loaders (no training code lives here)."""

from synthmed.models.ldm import (
    AutoencoderConfig,
    NoiseScheduleConfig,
    UNetConfig,
    build_autoencoder,
    build_noise_scheduler,
    build_unet,
    save_pipeline,
)
from synthmed.models.text_encoders import (
    DEFAULT_TEXT_ENCODER,
    TextEncoder,
    encode_prompts,
    load_text_encoder,
)

__all__ = [
    "DEFAULT_TEXT_ENCODER",
    "AutoencoderConfig",
    "NoiseScheduleConfig",
    "TextEncoder",
    "UNetConfig",
    "build_autoencoder",
    "build_noise_scheduler",
    "build_unet",
    "encode_prompts",
    "load_text_encoder",
    "save_pipeline",
]
