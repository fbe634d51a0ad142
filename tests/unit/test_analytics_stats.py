"""Percentiles and lift, against numbers worked by hand."""

from __future__ import annotations

import pytest

from mallfence.analytics.stats import lift, percentile


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 0.5, None),
    ([42.0], 0.9, 42.0),
    ([60, 240, 300, 600, 1200], 0.5, 300.0),  # odd count: the middle one
    ([60, 240, 300, 600, 1200], 0.9, 960.0),  # rank 3.6: 600 + 0.6 * 600
    ([300, 4800], 0.5, 2550.0),  # even count: halfway
    ([1, 2, 3, 4], 1.0, 4.0),
    ([1, 2, 3, 4], 0.0, 1.0),
])
def test_percentile_interpolates_like_percentile_cont(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == pytest.approx(expected) if expected is not None else percentile(values, q) is None


def test_a_clear_lift_has_an_interval_above_zero() -> None:
    r = lift(300, 1000, 200, 1000)  # 30 % vs 20 %: se = sqrt(.21/1000 + .16/1000) = 0.01924
    assert r.difference == pytest.approx(0.1)
    assert r.ci95 == pytest.approx((0.1 - 1.959964 * 0.019235, 0.1 + 1.959964 * 0.019235), abs=1e-5)
    assert r.verdict == "higher with the push"


@pytest.mark.parametrize(("args", "verdict", "has_interval"), [
    ((210, 1000, 200, 1000), "no clear difference", True),  # 21 % vs 20 %: the interval holds 0
    ((100, 1000, 200, 1000), "lower with the push", True),
    ((10, 20, 2, 20), "too few to tell", False),  # 20 shoppers a group
    ((3, 500, 1, 500), "too few to tell", False),  # big groups, but 3 and 1 successes
    ((5, 50, 0, 0), "too few to tell", False),  # no holdout at all
])
def test_what_the_lift_allows_one_to_say(args: tuple[int, int, int, int], verdict: str, has_interval: bool) -> None:
    r = lift(*args)
    assert r.verdict == verdict and (r.ci95 is not None) == has_interval
