"""Image classifiers: seed 000's ViT, a small CNN, presets, data loading, training and metrics."""

from synthmed.classify.augment import AugmentConfig, augment_batch
from synthmed.classify.cnn import CNNConfig, ConvNet
from synthmed.classify.data import CLASS_NAMES, labels_for, load_images, record_class
from synthmed.classify.metrics import auroc, bootstrap_indices, classification_metrics
from synthmed.classify.presets import PRESETS, ClassifierPreset, build_classifier, get_preset, preset_names
from synthmed.classify.train import FitResult, TrainConfig, fit, predict
from synthmed.classify.vit import ViT, ViTConfig

__all__ = [
    "CLASS_NAMES",
    "PRESETS",
    "AugmentConfig",
    "CNNConfig",
    "ClassifierPreset",
    "ConvNet",
    "FitResult",
    "TrainConfig",
    "ViT",
    "ViTConfig",
    "augment_batch",
    "auroc",
    "bootstrap_indices",
    "build_classifier",
    "classification_metrics",
    "fit",
    "get_preset",
    "labels_for",
    "load_images",
    "predict",
    "preset_names",
    "record_class",
]
