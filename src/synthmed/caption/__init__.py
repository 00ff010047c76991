"""Captioners: images (+ masks) -> structured findings."""

from synthmed.caption.base import Captioner, CaptionInput, CaptionResult, captioner_names, get_captioner
from synthmed.caption.mask import MaskCaptioner, MaskCaptionerConfig
from synthmed.caption.runner import CaptionSummary, caption_dataset

__all__ = [
    "CaptionInput",
    "CaptionResult",
    "CaptionSummary",
    "Captioner",
    "MaskCaptioner",
    "MaskCaptionerConfig",
    "caption_dataset",
    "captioner_names",
    "get_captioner",
]
