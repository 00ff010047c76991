"""Lesion segmentation: a small U-Net trained on image + mask pairs (``synthmed train segmenter``)."""

from synthmed.segment.model import LesionSegmenter, SegmenterConfig
from synthmed.segment.train import SegmenterTrainConfig, fit_segmenter, load_pairs, train_segmenter

__all__ = ["LesionSegmenter", "SegmenterConfig", "SegmenterTrainConfig", "fit_segmenter", "load_pairs",
           "train_segmenter"]
