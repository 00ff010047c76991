"""Feature extractors by name.

Names: ``inception``, ``efficientnet-lite0``, ``clip:<id or path>``, ``dinov2:<id or path>``,
``domain:<path>``, and ``auto`` — Inception when its weights are on this machine, else
EfficientNet-Lite0 (offline; labelled not comparable with published FIDs). ``auto`` never
downloads. Third-party extractors join with :func:`register_extractor`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthmed.errors import ConfigError
from synthmed.features.base import FeatureExtractor

logger = logging.getLogger(__name__)

Factory = Callable[..., FeatureExtractor]


def _inception(arg: str | None, *, weights: str | Path | None = None, preprocessing: str | None = None,
               device: str = "cpu", allow_download: bool = False, verify_weights: bool = True,
               **_: Any) -> FeatureExtractor:
    from synthmed.features.inception import InceptionExtractor

    return InceptionExtractor(weights, mode=preprocessing or "torch-fidelity", device=device,
                              allow_download=allow_download, verify=verify_weights)


def _efficientnet(arg: str | None, *, weights: str | Path | None = None, preprocessing: str | None = None,
                  device: str = "cpu", **_: Any) -> FeatureExtractor:
    from synthmed.features.efficientnet import EfficientNetLite0Extractor

    _only_default_preprocessing("efficientnet-lite0", preprocessing)
    return EfficientNetLite0Extractor(weights, device=device)


def _hf(kind: str) -> Factory:
    def build(arg: str | None, *, preprocessing: str | None = None, device: str = "cpu", **_: Any) -> FeatureExtractor:
        from synthmed.features.hf import HFVisionExtractor

        _only_default_preprocessing(kind, preprocessing)
        return HFVisionExtractor(kind, arg or "", device=device)

    return build


def _domain(arg: str | None, *, preprocessing: str | None = None, device: str = "cpu", trust_code: bool = False,
            **_: Any) -> FeatureExtractor:
    from synthmed.features.domain import DomainExtractor

    _only_default_preprocessing("domain", preprocessing)
    if not arg:
        raise ConfigError("--features domain:<path> needs the encoder directory after 'domain:'")
    return DomainExtractor(arg, device=device, trust_code=trust_code)


def _only_default_preprocessing(name: str, preprocessing: str | None) -> None:
    if preprocessing not in (None, "default"):
        raise ConfigError(f"--preprocessing {preprocessing!r} applies to 'inception' only; {name} has one "
                          "preprocessing (recorded in the output)")


def _judge(arg: str | None, *, preprocessing: str | None = None, device: str = "cpu", **_: Any) -> FeatureExtractor:
    from synthmed.features.judge import JudgeExtractor

    _only_default_preprocessing("judge", preprocessing)
    if not arg:
        raise ConfigError("--features judge:<ref> needs a judge directory or builtin:<name> after 'judge:'")
    return JudgeExtractor(arg, device=device)


_PLAIN: dict[str, Factory] = {"inception": _inception, "efficientnet-lite0": _efficientnet}
_PREFIXED: dict[str, Factory] = {"clip": _hf("clip"), "dinov2": _hf("dinov2"), "domain": _domain, "judge": _judge}
_PREFIX_HELP = {"clip": "clip:<id or path>", "dinov2": "dinov2:<id or path>", "domain": "domain:<path>",
                "judge": "judge:<dir or builtin:name>"}


def extractor_names() -> list[str]:
    """The accepted ``--features`` values."""
    return ["auto", *_PLAIN, *(_PREFIX_HELP.get(p, f"{p}:<arg>") for p in _PREFIXED)]


def register_extractor(name: str, factory: Factory, *, prefixed: bool = False) -> None:
    """Add an extractor: ``factory(arg, **options)`` builds it; ``prefixed`` names take ``name:<arg>``."""
    (_PREFIXED if prefixed else _PLAIN)[name] = factory


def default_extractor_name() -> str:
    """``inception`` when its weights are present locally, else ``efficientnet-lite0``."""
    from synthmed.features.inception import inception_available

    return "inception" if inception_available() else "efficientnet-lite0"


def build_extractor(name: str = "auto", **options: Any) -> FeatureExtractor:
    """Build a feature extractor by name.

    Args:
        name: See :func:`extractor_names`.
        **options: ``weights``, ``preprocessing``, ``device``, ``allow_download``,
            ``verify_weights``, ``trust_code`` — each used by the extractors it applies to.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), or the extractor's own
            error (missing weights, unreadable checkpoint).
    """
    if name == "auto":
        name = default_extractor_name()
        if name != "inception":
            from synthmed.features.inception import missing_weights_message

            logger.warning("features: using efficientnet-lite0 (offline); its Fréchet distance is NOT comparable "
                           "with published FIDs. For FID, %s", missing_weights_message())
    if name in _PLAIN:
        return _PLAIN[name](None, **options)
    prefix, sep, arg = name.partition(":")
    if sep and prefix in _PREFIXED:
        return _PREFIXED[prefix](arg, **options)
    raise ConfigError(f"--features: unknown feature extractor {name!r}; available: {', '.join(extractor_names())}")
