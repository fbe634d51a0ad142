"""Pure numbers: percentiles and the difference of two proportions with its confidence interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959964
MIN_GROUP = 30  # fewer shoppers than this in a group: the lift is not told
MIN_OUTCOMES = 5  # nor when either group has fewer than this many successes or failures


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) with linear interpolation between ranks (PostgreSQL's percentile_cont)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class Lift:
    treatment_rate: float | None
    holdout_rate: float | None
    difference: float | None  # treatment rate - holdout rate
    ci95: tuple[float, float] | None  # Wald interval of the difference
    verdict: str  # "too few to tell" | "higher with the push" | "lower with the push" | "no clear difference"


def lift(treated: int, n_treated: int, held: int, n_held: int) -> Lift:
    """Treatment rate minus holdout rate with a 95 % two-proportion (Wald) interval, and what it allows one to say.

    The interval is only stated when both groups have ``MIN_GROUP`` members and at least ``MIN_OUTCOMES``
    successes and failures each (where the normal approximation behind it holds)."""
    p1 = treated / n_treated if n_treated else None
    p2 = held / n_held if n_held else None
    if p1 is None or p2 is None:
        return Lift(p1, p2, None, None, "too few to tell")
    diff = p1 - p2
    enough = min(n_treated, n_held) >= MIN_GROUP and min(treated, n_treated - treated, held,
                                                           n_held - held) >= MIN_OUTCOMES
    if not enough:
        return Lift(p1, p2, diff, None, "too few to tell")
    se = math.sqrt(p1 * (1 - p1) / n_treated + p2 * (1 - p2) / n_held)
    lo, hi = diff - Z95 * se, diff + Z95 * se
    verdict = "higher with the push" if lo > 0 else "lower with the push" if hi < 0 else "no clear difference"
    return Lift(p1, p2, diff, (lo, hi), verdict)
