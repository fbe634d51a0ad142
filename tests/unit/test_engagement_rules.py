"""The push budget and campaign schedules: tables across timezones and DST, and properties over random days."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mallfence.engagement.candidates import PushCandidate
from mallfence.engagement.rules import (
    COOLDOWN,
    DAILY_CAP,
    MIN_GAP,
    NO_CONSENT,
    OPTED_OUT,
    OUT_OF_STOCK,
    OUTRANKED,
    QUIET_HOURS,
    WEEKLY_CAP,
    Audience,
    Ledger,
    Policy,
    Schedule,
    decide,
)

CPH = ZoneInfo("Europe/Copenhagen")
NYC = ZoneInfo("America/New_York")
YES = Audience(marketing_consent=True)


def at(text: str, tz: ZoneInfo = CPH) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def offer(key: str = "o", priority: int = 0, **kw: object) -> PushCandidate:
    fields: dict = {"kind": "campaign", "category": "marketing", "title": "t", "body": "b", "dedupe_key": key,
                    "priority": priority, "campaign_id": 1, "topic": "offers"} | kw
    return PushCandidate(**fields)


def order_ready(key: str = "r") -> PushCandidate:
    return PushCandidate(kind="order_ready", category="service", title="Ready", body="b", dedupe_key=key)


def one(c: PushCandidate, ledger: Ledger, now: float, policy: Policy | None = None,
        audience: Audience = YES, **kw: object) -> tuple[bool, str | None]:
    [v] = decide([c], audience, ledger, policy or Policy(tz=CPH), now, **kw)  # type: ignore[arg-type]
    return v.sent, v.reason


def test_consent_optout_and_stock_come_first() -> None:
    now = at("2026-12-01T12:00")
    assert one(offer(), Ledger(), now, audience=Audience()) == (False, NO_CONSENT)
    assert one(offer(), Ledger(), now, audience=Audience(True, frozenset({"offers"}))) == (False, OPTED_OUT)
    gone = one(offer(skus=("A", "B"), store_id=7), Ledger(), now, out_of_stock=lambda s, k: {"B"} if s == 7 else set())
    assert gone == (False, OUT_OF_STOCK)
    assert one(offer(skus=("A",), store_id=7), Ledger(), now, out_of_stock=lambda s, k: set()) == (True, None)


def test_service_pushes_need_no_consent_and_ignore_the_budget() -> None:
    ledger = Ledger()
    now = at("2026-12-01T23:30")  # quiet hours
    for i in range(4):
        assert one(order_ready(f"r{i}"), ledger, now + i, audience=Audience()) == (True, None)
    # ...but they count as a push just made: an offer right after one waits for the gap
    policy = Policy(tz=CPH, min_gap_s=3600)
    assert one(order_ready("r9"), ledger, at("2026-12-02T10:00"), policy) == (True, None)
    assert one(offer(), ledger, at("2026-12-02T10:10"), policy) == (False, MIN_GAP)
    assert one(offer(), ledger, at("2026-12-02T11:00"), policy) == (True, None)


@pytest.mark.parametrize(("local", "quiet"), [
    ("2026-12-01T20:59", False), ("2026-12-01T21:00", True), ("2026-12-02T03:00", True),
    ("2026-12-02T08:59", True), ("2026-12-02T09:00", False),
    ("2026-03-29T02:30", True),   # the hour that does not exist in Copenhagen: still night
    ("2026-10-25T02:30", True),   # the hour that happens twice
])
def test_quiet_hours_wrap_midnight_in_venue_time(local: str, quiet: bool) -> None:
    assert Policy(tz=CPH).quiet_at(at(local)) is quiet
    assert one(offer(), Ledger(), at(local))[1] == (QUIET_HOURS if quiet else None)


def test_no_quiet_hours() -> None:
    policy = Policy(tz=CPH, quiet_start=None, quiet_end=None)
    assert not policy.quiet_at(at("2026-12-02T03:00"))


def test_min_gap_then_daily_cap_counted_in_the_local_day() -> None:
    policy = Policy(tz=NYC, max_per_day=2, min_gap_s=600, quiet_start=None, quiet_end=None)
    ledger = Ledger()
    assert one(offer("a"), ledger, at("2026-12-01T22:00", NYC), policy) == (True, None)
    assert one(offer("b"), ledger, at("2026-12-01T22:05", NYC), policy) == (False, MIN_GAP)
    assert one(offer("c"), ledger, at("2026-12-01T22:20", NYC), policy) == (True, None)
    assert one(offer("d"), ledger, at("2026-12-01T23:50", NYC), policy) == (False, DAILY_CAP)
    # 00:10 in New York is still 1 December... no: it is 2 December there; UTC has been on the 2nd for hours
    assert one(offer("e"), ledger, at("2026-12-02T00:10", NYC), policy) == (True, None)


def test_daily_cap_on_the_25_hour_day() -> None:
    policy = Policy(tz=CPH, max_per_day=1, min_gap_s=0, quiet_start=None, quiet_end=None)
    ledger = Ledger()
    assert one(offer("a"), ledger, at("2026-10-25T00:30"), policy) == (True, None)
    assert one(offer("b"), ledger, at("2026-10-25T23:30"), policy) == (False, DAILY_CAP)  # 24 h later, same day
    assert one(offer("c"), ledger, at("2026-10-26T00:05"), policy) == (True, None)


def test_weekly_cap_rolls() -> None:
    policy = Policy(tz=CPH, max_per_day=5, max_per_week=3, min_gap_s=0, quiet_start=None, quiet_end=None)
    ledger = Ledger()
    for day in ("01", "02", "03"):
        assert one(offer(day), ledger, at(f"2026-12-{day}T12:00"), policy) == (True, None)
    assert one(offer("x"), ledger, at("2026-12-07T12:00"), policy) == (False, WEEKLY_CAP)
    assert one(offer("y"), ledger, at("2026-12-08T12:01"), policy) == (True, None)  # the 1st fell out


def test_campaign_cooldown_is_per_campaign() -> None:
    policy = Policy(tz=CPH, max_per_day=9, min_gap_s=0, quiet_start=None, quiet_end=None)
    ledger = Ledger()
    now = at("2026-12-01T12:00")
    assert one(offer("a", campaign_id=1, cooldown_s=3600), ledger, now, policy) == (True, None)
    assert one(offer("b", campaign_id=1, cooldown_s=3600), ledger, now + 60, policy) == (False, COOLDOWN)
    assert one(offer("c", campaign_id=2, cooldown_s=3600), ledger, now + 120, policy) == (True, None)
    assert one(offer("d", campaign_id=1, cooldown_s=3600), ledger, now + 3601, policy) == (True, None)


def test_the_highest_priority_wins_and_the_rest_say_who_beat_them() -> None:
    now = at("2026-12-01T12:00")
    cands = [offer("low", 1), offer("high", 5, campaign_id=2), order_ready(), offer("mid", 3, campaign_id=3)]
    verdicts = decide(cands, YES, Ledger(), Policy(tz=CPH), now)
    assert [(v.candidate.dedupe_key, v.sent, v.reason) for v in verdicts] == [
        ("low", False, OUTRANKED), ("high", True, None), ("r", True, None), ("mid", False, OUTRANKED)]
    assert verdicts[0].detail == {"winner": "t", "winner_key": "high", "winner_priority": 5, "priority": 1}


def test_a_held_back_candidate_does_not_block_a_lower_one() -> None:
    cands = [offer("top", 9, topic="events"), offer("next", 1, campaign_id=2)]
    verdicts = decide(cands, Audience(True, frozenset({"events"})), Ledger(), Policy(tz=CPH), at("2026-12-01T12:00"))
    assert [(v.sent, v.reason) for v in verdicts] == [(False, OPTED_OUT), (True, None)]


@pytest.mark.parametrize(("schedule", "local", "closed"), [
    (Schedule(CPH, days=frozenset({5, 6})), "2026-12-05T12:00", None),  # Saturday
    (Schedule(CPH, days=frozenset({5, 6})), "2026-12-04T12:00", "not on this weekday"),
    (Schedule(CPH, start=time(11), end=time(14)), "2026-12-01T13:59", None),
    (Schedule(CPH, start=time(11), end=time(14)), "2026-12-01T14:00", "outside 11:00-14:00"),
    # a late window on Fridays: 01:00 on Saturday belongs to Friday night
    (Schedule(CPH, days=frozenset({4}), start=time(22), end=time(2)), "2026-12-05T01:00", None),
    (Schedule(CPH, days=frozenset({4}), start=time(22), end=time(2)), "2026-12-04T01:00", "not on this weekday"),
    (Schedule(CPH, start=time(9), end=time(17)), "2026-03-29T09:30", None),  # the short day still opens at 9
    (Schedule(CPH, starts_at=at("2026-12-01T10:00")), "2026-12-01T09:59", "not started yet"),
    (Schedule(CPH, ends_at=at("2026-12-24T00:00")), "2026-12-24T00:00", "ended"),
    (Schedule(NYC, start=time(9), end=time(17)), "2026-12-01T09:30", None),
])
def test_schedules_in_venue_time(schedule: Schedule, local: str, closed: str | None) -> None:
    assert schedule.closed_because(at(local, schedule.tz)) == closed


# -- properties over random days -------------------------------------------------------------------------------
steps = st.lists(st.tuples(st.floats(0, 20_000), st.sampled_from(["marketing", "wishlist", "service"]),
                           st.integers(1, 4), st.integers(-2, 2)), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(0, 3), st.integers(1, 8), st.sampled_from([0.0, 600.0, 3600.0]),
       st.sampled_from([CPH, NYC]))
def test_the_budget_is_never_overspent(walk, per_day, per_week, gap, tz) -> None:  # type: ignore[no-untyped-def]
    policy = Policy(tz=tz, max_per_day=per_day, max_per_week=per_week, min_gap_s=gap)
    ledger, now = Ledger(), datetime(2026, 10, 20, 8, tzinfo=tz).timestamp()  # crosses the DST change
    sent: list[tuple[float, str]] = []
    for i, (dt, category, campaign, priority) in enumerate(walk):
        now += dt
        cands = [PushCandidate(kind="x", category=category, title="t", body="b", dedupe_key=f"{i}",
                               priority=priority, campaign_id=campaign)]
        for v in decide(cands, YES, ledger, policy, now):
            if v.sent:
                sent.append((now, category))
    budgeted = [t for t, c in sent if c != "service"]
    for t in budgeted:
        assert not policy.quiet_at(t)
        day = datetime.fromtimestamp(t, tz).date()
        assert sum(1 for u in budgeted if datetime.fromtimestamp(u, tz).date() == day) <= per_day
        assert sum(1 for u in budgeted if t - 7 * 86400 < u <= t) <= per_week
        earlier = [u for u, _ in sent if u < t]
        assert not earlier or t - max(earlier) >= gap
