"""Intensity windowing of raw scanner values to [0, 1].

Two methods, both recorded in a row's ``windowing`` field so that the mapping from
scanner values to pixels is never lost:

* ``percentile``: clip to the ``low``/``high`` percentiles of the image (robust to outliers);
* ``window``: a radiological window ``center``/``width`` with one of DICOM's VOI LUT
  functions (PS3.3 C.11.2.1.2-3): ``linear_exact`` (default: ``center +- width/2`` maps to
  0..1 linearly), ``linear`` (DICOM's default for a file's own window: centre ``c - 0.5``,
  width ``w - 1``, as a scanner's display applies it) or ``sigmoid``
  (``1 / (1 + exp(-4 (x - c) / w))``, no hard clipping);
* ``minmax``: the image's own min and max (no clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from synthmed.errors import ConfigError

WindowFunction = Literal["linear_exact", "linear", "sigmoid"]
_FUNCTIONS = ("linear_exact", "linear", "sigmoid")


@dataclass(frozen=True)
class Windowing:
    """How raw values map to [0, 1]."""

    method: Literal["percentile", "window", "minmax"] = "percentile"
    low: float = 0.5
    high: float = 99.5
    center: float | None = None
    width: float | None = None
    function: WindowFunction = "linear_exact"

    def __post_init__(self) -> None:
        if self.method not in ("percentile", "window", "minmax"):
            raise ConfigError(f"windowing method must be percentile, window or minmax, got {self.method!r}")
        if self.method == "percentile" and not 0 <= self.low < self.high <= 100:
            raise ConfigError(f"percentile window needs 0 <= low < high <= 100, got {self.low}, {self.high}")
        if self.method == "window" and (self.center is None or self.width is None or self.width <= 0):
            raise ConfigError("window method needs center and a positive width")
        if self.function not in _FUNCTIONS:
            raise ConfigError(f"window function must be one of {', '.join(_FUNCTIONS)}, got {self.function!r}")
        if self.method == "window" and self.function == "linear" and self.width < 1:  # type: ignore[operator]
            raise ConfigError(f"a DICOM LINEAR window needs width >= 1, got {self.width}")

    def apply(self, raw: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Map ``raw`` to float32 in [0, 1].

        Returns:
            The windowed image and the record to store (method, parameters and the
            resulting raw-value bounds).
        """
        raw = np.asarray(raw, dtype=np.float64)
        finite = raw[np.isfinite(raw)]
        if finite.size == 0:
            raise ValueError("image has no finite values")
        if self.method == "percentile":
            lo, hi = np.percentile(finite, [self.low, self.high])
        elif self.method == "window":
            return self._window(raw)
        else:
            lo, hi = float(finite.min()), float(finite.max())
        relevant = {"percentile": ("low", "high"), "minmax": ()}[self.method]
        record: dict[str, Any] = {"method": self.method, **{k: getattr(self, k) for k in relevant}}
        return _linear(raw, lo, hi), {**record, "raw_low": float(lo), "raw_high": float(hi)}

    def _window(self, raw: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        c, w = float(self.center), float(self.width)  # type: ignore[arg-type]
        record: dict[str, Any] = {"method": "window", "center": self.center, "width": self.width}
        if self.function != "linear_exact":
            record["function"] = self.function
        if self.function == "sigmoid":
            values = np.nan_to_num(raw, nan=c)
            out = (1.0 / (1.0 + np.exp(-4.0 * (values - c) / w))).astype(np.float32)
            return out, record
        if self.function == "linear":
            c, w = c - 0.5, w - 1.0
        lo, hi = c - w / 2, c + w / 2
        return _linear(raw, lo, hi), {**record, "raw_low": lo, "raw_high": hi}


def _linear(raw: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo`` -> 0, ``hi`` -> 1, clipped; NaN counts as ``lo``."""
    scale = hi - lo if hi > lo else 1.0
    return np.clip((np.nan_to_num(raw, nan=lo) - lo) / scale, 0.0, 1.0).astype(np.float32)


def parse_windowing(spec: str | None) -> Windowing | None:
    """Parse a command-line windowing spec.

    ``"percentile"``, ``"percentile:1:99"``, ``"window:40:80"`` (center:width),
    ``"window:40:80:sigmoid"`` (with a VOI function), ``"minmax"`` or ``None``/``"none"``
    (keep raw values).
    """
    if spec is None or spec == "none":
        return None
    parts = spec.split(":")
    try:
        if parts[0] == "percentile":
            if len(parts) == 1:
                return Windowing("percentile")
            return Windowing("percentile", low=float(parts[1]), high=float(parts[2]))
        if parts[0] == "window" and len(parts) in (3, 4):
            function = parts[3] if len(parts) == 4 else "linear_exact"
            return Windowing("window", center=float(parts[1]), width=float(parts[2]),
                             function=function)  # type: ignore[arg-type]
        if parts[0] == "minmax" and len(parts) == 1:
            return Windowing("minmax")
    except (IndexError, ValueError) as err:
        raise ConfigError(f"bad windowing spec {spec!r}: {err}") from err
    raise ConfigError(
        f"bad windowing spec {spec!r}; expected percentile[:LOW:HIGH], window:CENTER:WIDTH[:FUNCTION], minmax or none"
    )
