"""Campaign matching and segments: which campaigns fire for a trigger and shopper, and why the others do not."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mallfence.engagement.matching import (
    AUDIENCE,
    BUDGET,
    SCHEDULE,
    TOO_SHORT,
    CampaignIndex,
    CampaignRule,
    Incentive,
    Profile,
    Text,
    Trigger,
    match,
)
from mallfence.engagement.rules import Schedule
from mallfence.engagement.segments import SEGMENTS, SegmentParams, classify

CPH = ZoneInfo("Europe/Copenhagen")
NOON = datetime(2026, 12, 1, 12, tzinfo=CPH).timestamp()
FOOD, SHOE = 10, 20


def rule(id_: int = 1, **kw: object) -> CampaignRule:
    fields: dict = {"id": id_, "name": f"c{id_}", "trigger": "enter", "zone_ids": frozenset({FOOD}),
                    "schedule": Schedule(CPH), "text": Text("Coffee {incentive}", "Get {incentive} today"),
                    "texts": {"da": Text("Kaffe {incentive}", "Få {incentive} i dag")}} | kw
    return CampaignRule(**fields)


def trig(kind: str = "enter", zone: int = FOOD, at: float = NOON, duration: float | None = None) -> Trigger:
    return Trigger(kind, zone, at, 99, duration, store_id=5)


ME = Profile("s1", "returning", None, "en")


def test_only_campaigns_listening_to_that_trigger_and_zone() -> None:
    index = CampaignIndex([rule(1), rule(2, zone_ids=frozenset({SHOE})), rule(3, trigger="exit")])
    assert [c.campaign_id for c in match(trig(), index, ME)[0]] == [1]
    assert match(trig("dwell"), index, ME) == ([], [])
    assert [c.campaign_id for c in match(trig("exit"), index, ME)[0]] == [3]


def test_text_in_the_app_language_and_the_push_names_its_source() -> None:
    [c], _ = match(trig(), CampaignIndex([rule(incentives=(Incentive("*", "10 %"),), skus=("SKU1",))]),
                   replace(ME, language="da"))
    assert (c.title, c.body) == ("Kaffe 10 %", "Få 10 % i dag")
    assert c.dedupe_key == "cmp:1:s1:99" and c.store_id == 5 and c.skus == ("SKU1",)
    assert c.data == {"campaign_id": "1", "zone_id": str(FOOD), "skus": "SKU1"} and c.category == "marketing"
    [c], _ = match(trig(), CampaignIndex([rule(incentives=(Incentive("*", "10 %"),))]), replace(ME, language="fr"))
    assert c.title == "Coffee 10 %"  # no French text: the default


def test_incentive_tiers_by_segment_and_decline() -> None:
    tiers = (Incentive("lapsing", "25 % off", 0.6), Incentive("lapsing", "10 % off", 0.3), Incentive("*", "5 % off"))
    index = CampaignIndex([rule(incentives=tiers)])

    def title(segment: str, decline: float | None) -> str:
        return match(trig(), index, Profile("s", segment, decline))[0][0].title

    assert title("lapsing", 0.75) == "Coffee 25 % off"
    assert title("lapsing", 0.4) == "Coffee 10 % off"
    assert title("lapsing", 0.1) == "Coffee 5 % off"
    assert title("new", None) == "Coffee 5 % off"
    index = CampaignIndex([rule(incentives=tiers[:2])])
    [skip] = match(trig(), index, Profile("s", "new"))[1]
    assert skip.reason == AUDIENCE and "no incentive tier" in str(skip.detail["why"])


@pytest.mark.parametrize(("change", "profile", "reason"), [
    ({"schedule": Schedule(CPH, start=time(14), end=time(17))}, ME, SCHEDULE),
    ({"segments": frozenset({"lapsing"})}, ME, AUDIENCE),
    ({"visitors": "new"}, ME, AUDIENCE),
    ({"visitors": "returning"}, Profile("s", "new"), AUDIENCE),
    ({"trigger": "dwell", "min_stay_s": 300.0}, ME, TOO_SHORT),
])
def test_listening_campaigns_that_may_not_fire_say_why(change: dict, profile: Profile, reason: str) -> None:
    r = rule(**change)
    got, skipped = match(trig(r.trigger, duration=120.0), CampaignIndex([r]), profile)
    assert got == [] and [s.reason for s in skipped] == [reason]


def test_a_spent_budget_skips_the_campaign() -> None:
    r = rule(budget=10)
    assert [s.reason for s in match(trig(), CampaignIndex([r]), ME, exhausted=frozenset({1}))[1]] == [BUDGET]


# -- segments --------------------------------------------------------------------------------------------------
TODAY = date(2026, 12, 1)


def days(*ago: int) -> list[date]:
    return [TODAY - timedelta(days=d) for d in ago]


@pytest.mark.parametrize(("visits", "spend", "segment"), [
    ([], [], "new"),
    (days(0), [], "new"),  # today does not count: it is the visit being judged
    (days(3, 10), [], "new"),
    (days(3, 10, 20), [], "returning"),  # a third visit day makes a regular
    (days(70, 90, 120), [], "lapsed"),
    # every 10 days for half a year, then nothing for 25 days: lapsing
    (days(25, *range(35, 215, 10)), [], "lapsing"),
    (days(5, 15, 25, *range(35, 215, 10)), [], "returning"),  # still coming at the usual pace
    (days(5, 40, 80, 150), [], "returning"),  # too few visits to judge a decline
    (days(5, 15, 40, 80), [(TODAY - timedelta(days=20), 800.0)], "high_value"),
])
def test_segments_table(visits: list[date], spend: list, segment: str) -> None:
    assert classify(visits, spend, TODAY).segment == segment


def test_lapsing_explains_its_numbers() -> None:
    v = classify(days(25, *range(35, 215, 10)), [], TODAY)
    assert v.segment == "lapsing" and v.decline == 0.667
    assert v.explain["visits_last_30d"] == 1 and v.explain["visits_180d_before"] == 18
    assert v.explain["expected_per_30d"] == 3.0 and "fell 67%" in str(v.explain["rule"])


@given(st.lists(st.integers(0, 400), max_size=60), st.lists(st.tuples(st.integers(0, 200),
                                                                       st.floats(0, 2000)), max_size=10))
def test_every_history_gets_one_known_segment(ago: list[int], spend: list) -> None:
    v = classify(days(*ago), [(TODAY - timedelta(days=d), a) for d, a in spend], TODAY, SegmentParams())
    assert v.segment in SEGMENTS and (v.decline is None) == (v.segment != "lapsing")
