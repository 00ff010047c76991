"""Intensity windowing of raw scanner values to [0, 1].

Two methods, both recorded in a row's ``windowing`` field so that the mapping from
scanner values to pixels is never lost:

* ``percentile``: clip to the ``low``/``high`` percentiles of the image (robust to outliers);
* ``window``: a radiological window ``center``/``width`` (e.g. DICOM Window Center/Width);
* ``minmax``: the image's own min and max (no clipping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from synthmed.errors import ConfigError


@dataclass(frozen=True)
class Windowing:
    """How raw values map to [0, 1]."""

    method: Literal["percentile", "window", "minmax"] = "percentile"
    low: float = 0.5
    high: float = 99.5
    center: float | None = None
    width: float | None = None

    def __post_init__(self) -> None:
        if self.method not in ("percentile", "window", "minmax"):
            raise ConfigError(f"windowing method must be percentile, window or minmax, got {self.method!r}")
        if self.method == "percentile" and not 0 <= self.low < self.high <= 100:
            raise ConfigError(f"percentile window needs 0 <= low < high <= 100, got {self.low}, {self.high}")
        if self.method == "window" and (self.center is None or self.width is None or self.width <= 0):
            raise ConfigError("window method needs center and a positive width")

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
            lo, hi = self.center - self.width / 2, self.center + self.width / 2  # type: ignore[operator]
        else:
            lo, hi = float(finite.min()), float(finite.max())
        scale = hi - lo if hi > lo else 1.0
        out = np.clip((np.nan_to_num(raw, nan=lo) - lo) / scale, 0.0, 1.0).astype(np.float32)
        relevant = {"percentile": ("low", "high"), "window": ("center", "width"), "minmax": ()}[self.method]
        record: dict[str, Any] = {"method": self.method, **{k: getattr(self, k) for k in relevant}}
        record.update(raw_low=float(lo), raw_high=float(hi))
        return out, record


def parse_windowing(spec: str | None) -> Windowing | None:
    """Parse a command-line windowing spec.

    ``"percentile"``, ``"percentile:1:99"``, ``"window:40:80"`` (center:width), ``"minmax"``
    or ``None``/``"none"`` (keep raw values).
    """
    if spec is None or spec == "none":
        return None
    parts = spec.split(":")
    try:
        if parts[0] == "percentile":
            if len(parts) == 1:
                return Windowing("percentile")
            return Windowing("percentile", low=float(parts[1]), high=float(parts[2]))
        if parts[0] == "window" and len(parts) == 3:
            return Windowing("window", center=float(parts[1]), width=float(parts[2]))
        if parts[0] == "minmax" and len(parts) == 1:
            return Windowing("minmax")
    except (IndexError, ValueError) as err:
        raise ConfigError(f"bad windowing spec {spec!r}: {err}") from err
    raise ConfigError(
        f"bad windowing spec {spec!r}; expected percentile[:LOW:HIGH], window:CENTER:WIDTH, minmax or none"
    )
