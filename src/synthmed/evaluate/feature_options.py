"""Feature-extractor settings shared by the configs of ``synthmed evaluate fidelity`` and ``privacy``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class FeatureExtractorOptions(BaseModel):
    """Which extractor (any of :mod:`synthmed.features`) embeds the images, and how its features are computed."""

    model_config = ConfigDict(extra="forbid")

    features: str = "auto"
    weights: Path | None = None
    preprocessing: str | None = None
    cache_dir: Path | None = None
    use_cache: bool = True
    batch_size: int = Field(32, ge=1)
    device: str = "cpu"
    allow_download: bool = False
    verify_weights: bool = True
    trust_code: bool = False
    progress: bool = False

    def build_extractor(self):
        """The feature extractor these options name."""
        from synthmed.features import build_extractor

        return build_extractor(self.features, weights=self.weights, preprocessing=self.preprocessing,
                               device=self.device, allow_download=self.allow_download,
                               verify_weights=self.verify_weights, trust_code=self.trust_code)
