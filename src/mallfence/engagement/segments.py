"""Behaviour segments from a shopper's own history: new, returning, lapsing, lapsed, high value. PURE.

Judged on the days before today (a visit in progress does not hide a lapse), in the venue's calendar.
Lapsing compares the shopper with themselves: visits in the last 30 days against their own rate over
the 180 days before that, so a monthly regular who skipped a month lapses and a once-a-quarter shopper
does not. Every verdict comes with the numbers that made it (``explain``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

SEGMENTS = ("new", "returning", "lapsing", "lapsed", "high_value")


@dataclass(frozen=True, slots=True)
class SegmentParams:
    new_days: int = 30  # first seen within this many days, with fewer than new_max_visits visit days: new
    new_max_visits: int = 3
    lapsed_after_days: int = 60  # no visit for this long before today: lapsed (a win-back)
    recent_days: int = 30
    baseline_days: int = 180
    lapsing_decline: float = 0.4  # visits per recent_days fell by at least this share of the shopper's own rate
    min_baseline_visits: int = 3  # fewer baseline visits than this tell nothing about a decline
    high_value_days: int = 90
    high_value_amount: float = 500.0  # spent within high_value_days (the venue's currency)


@dataclass(frozen=True, slots=True)
class Verdict:
    segment: str
    decline: float | None
    explain: dict[str, object]


def classify(visit_days: Iterable[date], spend: Sequence[tuple[date, float]], today: date,
             params: SegmentParams = SegmentParams()) -> Verdict:
    """The segment of a shopper with these visit days and purchases, as of ``today`` (local date)."""
    p = params
    prior = sorted({d for d in visit_days if d < today})
    spent = round(sum(a for d, a in spend if today - timedelta(days=p.high_value_days) <= d <= today), 2)
    base: dict[str, object] = {"visit_days_before_today": len(prior), f"spent_{p.high_value_days}d": spent}
    if not prior:
        return Verdict("new", None, {**base, "rule": "first visit"})
    first, last = prior[0], prior[-1]
    base |= {"first_visit": first.isoformat(), "last_visit": last.isoformat()}
    if (today - first).days <= p.new_days and len(prior) < p.new_max_visits:
        return Verdict("new", None, {**base, "rule": f"first seen {(today - first).days} days ago, "
                                                    f"{len(prior)} earlier visit day(s)"})
    gap = (today - last).days
    if gap >= p.lapsed_after_days:
        return Verdict("lapsed", None, {**base, "days_since_last_visit": gap,
                                        "rule": f"no visit for {gap} days (lapsed after {p.lapsed_after_days})"})
    recent_from = today - timedelta(days=p.recent_days)
    base_from = recent_from - timedelta(days=p.baseline_days)
    recent = sum(1 for d in prior if d >= recent_from)
    baseline = sum(1 for d in prior if base_from <= d < recent_from)
    expected = baseline * p.recent_days / p.baseline_days
    base |= {f"visits_last_{p.recent_days}d": recent, f"visits_{p.baseline_days}d_before": baseline,
             f"expected_per_{p.recent_days}d": round(expected, 2)}
    if baseline >= p.min_baseline_visits and expected > 0:
        decline = max(0.0, 1.0 - recent / expected)
        if decline >= p.lapsing_decline:
            return Verdict("lapsing", round(decline, 3), {**base, "decline": round(decline, 3),
                                                         "rule": f"visits fell {decline:.0%} against own rate"})
    if spent >= p.high_value_amount:
        return Verdict("high_value", None, {**base, "rule": f"spent {spent:g} in {p.high_value_days} days"})
    return Verdict("returning", None, {**base, "rule": "seen before, no other segment applies"})
