"""Stage results: one :class:`Metric` shape and one typed result model per evaluating stage kind.

Producers (``evaluate``, ``localize``, ``explain``) write these; the report, the demo's
``summary.md`` and the pipeline read them through the stage registry. Depends on nothing in
synthmed but ``errors`` and ``utils``, so any room may use it.
"""

from synthmed.results.io import read_result, upgrade_v1, write_result
from synthmed.results.metric import Agreement, Metric
from synthmed.results.stages import (
    AdherenceResult,
    CaptionerScores,
    CaptionsResult,
    DownstreamComparison,
    DownstreamCondition,
    DownstreamResult,
    ExplainResult,
    ExplainScores,
    FidelityResult,
    Headline,
    LocalizationResult,
    LocalizationTSTRResult,
    MaskAdherenceResult,
    PrivacyResult,
    ReaderScores,
    RealVsReal,
    StageResult,
    StudyResult,
)

__all__ = [
    "AdherenceResult", "Agreement", "CaptionerScores", "CaptionsResult", "DownstreamComparison",
    "DownstreamCondition", "DownstreamResult", "ExplainResult", "ExplainScores", "FidelityResult", "Headline",
    "LocalizationResult", "LocalizationTSTRResult", "MaskAdherenceResult", "Metric", "PrivacyResult",
    "ReaderScores", "RealVsReal", "StageResult", "StudyResult",
    "read_result", "upgrade_v1", "write_result",
]
