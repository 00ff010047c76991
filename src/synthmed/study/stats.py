"""Statistics of a reader study: agreement between readers (Fleiss' kappa) and the reader bootstrap."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of ``counts[item, category]`` (how many readers put each item in each category).

    Items may have different numbers of ratings (the per-item agreement is taken over that item's
    own raters); items with fewer than two are left out. NaN when fewer than two items remain or
    when every rating falls in one category (chance agreement is then 1).
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)
    counts, n = counts[n >= 2], n[n >= 2]
    if len(n) < 2:
        return float("nan")
    agree = ((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean()
    shares = counts.sum(axis=0) / n.sum()
    chance = float((shares**2).sum())
    if chance >= 1.0:
        return float("nan")
    return float((agree - chance) / (1.0 - chance))


def two_level_bootstrap(ratings: np.ndarray, statistic: Callable[[np.ndarray, np.ndarray], np.ndarray | float], *,
                        n_boot: int, seed: int) -> np.ndarray:
    """Replicates of ``statistic`` with readers and images both resampled (Obuchowski's reader-case bootstrap).

    Args:
        ratings: (readers, images) with NaN where a reader gave no answer.
        statistic: ``f(ratings, image_index)`` of a resampled matrix and the original index of each of its
            columns (to look the truth up); a number or an array of numbers.

    Returns:
        (n_boot, ...) replicates.
    """
    rng = np.random.default_rng(seed)
    n_readers, n_images = ratings.shape
    out = []
    for _ in range(n_boot):
        readers = rng.integers(0, n_readers, n_readers)
        images = rng.integers(0, n_images, n_images)
        out.append(np.asarray(statistic(ratings[np.ix_(readers, images)], images), dtype=np.float64))
    return np.stack(out)
