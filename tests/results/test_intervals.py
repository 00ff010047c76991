import pytest

from synthmed.results.intervals import wilson_interval


def test_wilson_interval_reference_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) != wilson_interval(0, 0)  # (nan, nan)


def test_percentile_ci_recentres_and_says_none_without_replicates():
    from synthmed.results.intervals import percentile_ci

    vals = list(range(101))  # median 50, 2.5 % / 97.5 % quantiles 2.5 / 97.5
    assert percentile_ci(vals) == pytest.approx((2.5, 97.5))
    assert percentile_ci(vals, recentre_on=40.0) == pytest.approx((-7.5, 87.5))
    assert percentile_ci([float("nan"), float("inf")]) is None
