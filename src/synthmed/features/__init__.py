"""Image feature extractors behind one contract: images -> (N, D) float tensor.

See :mod:`synthmed.features.registry` for the names (``inception``, ``efficientnet-lite0``,
``clip:…``, ``dinov2:…``, ``domain:…``) and :mod:`synthmed.features.preprocess` for how
images are prepared. Heavy modules (transformers, the networks) load on first use.
"""

from synthmed.features.base import ExtractedFeatures, FeatureExtractor
from synthmed.features.registry import build_extractor, default_extractor_name, extractor_names, register_extractor

__all__ = [
    "ExtractedFeatures",
    "FeatureExtractor",
    "build_extractor",
    "default_extractor_name",
    "extractor_names",
    "register_extractor",
]
