"""Confidence intervals shared by every producer of a :class:`~synthmed.results.Metric`."""

from __future__ import annotations

import numpy as np


def wilson_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / n`` (Wilson 1927); (nan, nan) if n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - level) / 2))
    p = correct / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def percentile_ci(values, level: float = 0.95, recentre_on: float | None = None) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of bootstrap replicates (non-finite ones ignored); None without any.

    Args:
        values: The replicates.
        level: Coverage.
        recentre_on: The point estimate, for statistics that resampling with replacement biases
            (FID, KID: duplicated images shrink the effective n, so replicates run high): the
            replicates' spread around their median is placed around the estimate instead.
    """
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    a = (1 - level) / 2
    lo, hi = float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))
    if recentre_on is not None:
        shift = recentre_on - float(np.median(vals))
        lo, hi = lo + shift, hi + shift
    return lo, hi
