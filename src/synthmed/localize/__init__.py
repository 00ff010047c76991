"""CLIP-based tumour localisation (seed 003): zero-shot image scores and decoder anomaly maps."""

from synthmed.localize.backbone import ClipBackbone, default_stage_layers, load_backbone
from synthmed.localize.config import LocalizeTrainConfig
from synthmed.localize.localizer import Localizer, LocalizerConfig, LocalizerOutput, load_localizer
from synthmed.localize.metrics import LocalizationMetrics, auroc, average_precision, threshold_metrics
from synthmed.localize.predict import LocalizePredictConfig, predict_localization

__all__ = [
    "ClipBackbone",
    "LocalizationMetrics",
    "LocalizePredictConfig",
    "LocalizeTrainConfig",
    "Localizer",
    "LocalizerConfig",
    "LocalizerOutput",
    "auroc",
    "average_precision",
    "default_stage_layers",
    "load_backbone",
    "load_localizer",
    "predict_localization",
    "threshold_metrics",
]
