import pytest

from synthmed.results.intervals import wilson_interval


def test_wilson_interval_reference_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) != wilson_interval(0, 0)  # (nan, nan)
