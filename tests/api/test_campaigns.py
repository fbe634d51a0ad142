"""Campaigns over the API: offers on zone events, the shared push budget, every decision explained, dry runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from fastapi.testclient import TestClient

from tests.auth import app_key
from tests.factories import START, create_venue, create_zone, fix

FOOD = shapely.box(0, 0, 30, 20)
SHOES = shapely.box(40, 0, 60, 20)
LONDON = ZoneInfo("Europe/London")
OPEN_POLICY = {"max_per_day": 5, "max_per_week": 20, "min_gap_s": 0, "quiet_hours": None}


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client)
    food = create_zone(client, "mall", FOOD, name="Food court", kind="food_court", tags=["food"])
    shoes = create_zone(client, "mall", SHOES, name="Stride Shoes", store={"name": "Stride Shoes"})
    assert client.put("/v1/venues/mall/push-policy", json=OPEN_POLICY).status_code == 200
    return {"food": food, "shoes": shoes}


def shopper(client: TestClient, *, marketing: bool = True, locale: str | None = None) -> tuple[str, dict]:
    r = client.post("/v1/devices", json={"venue": "mall", "platform": "stub", "locale": locale},
                    headers=app_key(client, "mall"))
    device, auth = r.json()["device_id"], {"Authorization": f"Bearer {r.json()['token']}"}
    client.put(f"/v1/devices/{device}/consent", headers=auth,
               json={"location": True, "marketing": marketing, "analytics": True, "version": "1"})
    return device, auth


def campaign(client: TestClient, **kw: object) -> dict:
    body: dict = {"name": "Coffee", "trigger": "enter", "status": "active", "targets": {"kinds": ["food_court"]},
                  "content": {"title": "Two coffees for one", "body": "At any counter until 15:00"}} | kw
    r = client.post("/v1/venues/mall/campaigns", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def walk(client: TestClient, device: str, auth: dict, points: list[tuple[float, float, float]]) -> list[dict]:
    r = client.post(f"/v1/devices/{device}/positions", headers=auth,
                    json={"fixes": [fix(x, y, t) for x, y, t in points]})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def decisions(client: TestClient, device: str, auth: dict) -> list[tuple]:
    rows = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()
    return [(d["campaign_id"], d["trigger"], d["sent"], d["reason"]) for d in reversed(rows)]


def pushes(client: TestClient, device: str, auth: dict) -> list[str]:
    return [n["title"] for n in client.get(f"/v1/devices/{device}/notifications", headers=auth).json()]


def test_an_offer_goes_out_on_entering_its_zone_and_says_why(client: TestClient, mall: dict) -> None:
    c = campaign(client)
    assert c["zone_ids"] == [mall["food"]["id"]] and c["sends"] == 0
    device, auth = shopper(client)
    walk(client, device, auth, [(-5, 5, 0), (5, 5, 10)])
    assert pushes(client, device, auth) == ["Two coffees for one"]
    [d] = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()
    assert (d["campaign_id"], d["trigger"], d["sent"], d["zone_id"]) == (c["id"], "enter", True, mall["food"]["id"])
    assert d["detail"]["segment"] == "new" and d["notification_id"] is not None
    assert client.get(f"/v1/venues/mall/campaigns/{c['id']}").json()["sends"] == 1
    walk(client, device, auth, [(50, 5, 20)])  # the shoe store: no campaign listens, no decision
    assert len(decisions(client, device, auth)) == 1


def test_a_draft_sends_nothing_until_activated(client: TestClient, mall: dict) -> None:
    c = campaign(client, status="draft")
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0), (-5, 5, 10)])
    assert decisions(client, device, auth) == []
    assert client.patch(f"/v1/venues/mall/campaigns/{c['id']}", json={"status": "active"}).status_code == 200
    walk(client, device, auth, [(5, 5, 20)])
    assert decisions(client, device, auth) == [(c["id"], "enter", True, None)]


def test_two_offers_at_once_the_higher_priority_wins(client: TestClient, mall: dict) -> None:
    low = campaign(client, name="Low", priority=1)
    high = campaign(client, name="High", priority=5, targets={"tags": ["food"]},
                    content={"title": "Free cake", "body": "With any coffee"})
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0)])
    assert sorted(decisions(client, device, auth)) == sorted([(low["id"], "enter", False, "outranked"),
                                                              (high["id"], "enter", True, None)])
    assert pushes(client, device, auth) == ["Free cake"]


def test_one_budget_across_campaigns(client: TestClient, mall: dict) -> None:
    client.put("/v1/venues/mall/push-policy", json={**OPEN_POLICY, "max_per_day": 1})
    food = campaign(client, cooldown_s=0)
    shoes = campaign(client, name="Shoes", targets={"store_ids": [mall["shoes"]["store"]["id"]]},
                     content={"title": "Sneaker week", "body": "20 % off"})
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0), (50, 5, 60)])
    assert decisions(client, device, auth) == [(food["id"], "enter", True, None), (shoes["id"], "enter", False,
                                                                                   "daily_cap")]
    [held, _] = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()  # newest first
    assert held["detail"]["sent_today"] == 1 and held["detail"]["max_per_day"] == 1


def test_min_gap_and_campaign_cooldown(client: TestClient, mall: dict) -> None:
    client.put("/v1/venues/mall/push-policy", json={**OPEN_POLICY, "min_gap_s": 600})
    food = campaign(client, cooldown_s=3600)
    shoes = campaign(client, name="Shoes", cooldown_s=0, targets={"store_ids": [mall["shoes"]["store"]["id"]]})
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0), (50, 5, 60), (5, 5, 1200), (50, 5, 1300)])
    assert decisions(client, device, auth) == [
        (food["id"], "enter", True, None),
        (shoes["id"], "enter", False, "min_gap"),  # a minute after the coffee offer
        (food["id"], "enter", False, "campaign_cooldown"),  # the gap is over, the coffee campaign's hour is not
        (shoes["id"], "enter", True, None),
    ]


def test_consent_and_opt_outs(client: TestClient, mall: dict) -> None:
    campaign(client)
    no, no_auth = shopper(client, marketing=False)
    assert [e["kind"] for e in walk(client, no, no_auth, [(5, 5, 0)])] == ["enter"]
    # Without marketing consent the walk is not looked at for marketing: no decision is even recorded.
    assert decisions(client, no, no_auth) == []
    out, out_auth = shopper(client)
    assert client.put(f"/v1/devices/{out}/preferences", headers=out_auth, json={"opt_out": ["offers"]}).json() == {
        "opt_out": ["offers"]}
    walk(client, out, out_auth, [(5, 5, 0)])
    assert [r[3] for r in decisions(client, out, out_auth)] == ["opted_out"]
    assert pushes(client, no, no_auth) == pushes(client, out, out_auth) == []


def _local(t: float) -> datetime:
    return (START + timedelta(seconds=t)).astimezone(LONDON)


def test_quiet_hours_in_venue_time(client: TestClient, mall: dict) -> None:
    start = _local(0)
    quiet = [(start - timedelta(minutes=30)).strftime("%H:%M"), (start + timedelta(minutes=30)).strftime("%H:%M")]
    client.put("/v1/venues/mall/push-policy", json={**OPEN_POLICY, "quiet_hours": quiet})
    campaign(client)
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0)])
    assert [r[3] for r in decisions(client, device, auth)] == ["quiet_hours"]


def test_a_closed_schedule_is_logged_not_sent(client: TestClient, mall: dict) -> None:
    start = _local(0)
    window = [(start + timedelta(hours=2)).strftime("%H:%M"), (start + timedelta(hours=3)).strftime("%H:%M")]
    c = campaign(client, schedule={"hours": window})
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0)])
    [d] = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()
    assert (d["sent"], d["reason"], d["campaign_id"]) == (False, "schedule", c["id"])
    assert d["detail"]["why"].startswith("outside")


def test_budget_runs_out(client: TestClient, mall: dict) -> None:
    c = campaign(client, budget=1)
    a, a_auth = shopper(client)
    b, b_auth = shopper(client)
    walk(client, a, a_auth, [(5, 5, 0)])
    walk(client, b, b_auth, [(5, 5, 0)])
    assert decisions(client, a, a_auth) == [(c["id"], "enter", True, None)]
    assert decisions(client, b, b_auth) == [(c["id"], "enter", False, "campaign_budget")]


def test_language_segment_incentive(client: TestClient, mall: dict) -> None:
    campaign(client, content={"title": "Welcome: {incentive}", "body": "Show this at the counter",
                              "texts": {"da": {"title": "Velkommen: {incentive}", "body": "Vis dette ved disken"}}},
             incentives=[{"segment": "new", "text": "a free coffee"}, {"segment": "*", "text": "10 % off"}])
    device, auth = shopper(client, locale="da-DK")
    walk(client, device, auth, [(5, 5, 0)])
    assert pushes(client, device, auth) == ["Velkommen: a free coffee"]
    [d] = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()
    assert d["detail"]["incentive"]["segment"] == "new" and d["detail"]["language"] == "da"


def test_first_visit_of_the_day_fires_once(client: TestClient, mall: dict) -> None:
    c = campaign(client, trigger="first_visit", cooldown_s=0)
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0), (-5, 5, 10), (5, 5, 20)])
    assert [r for r in decisions(client, device, auth) if r[1] == "first_visit"] == [(c["id"], "first_visit",
                                                                                     True, None)]


def test_exit_after_a_long_stay(client: TestClient, mall: dict) -> None:
    c = campaign(client, trigger="exit", min_stay_s=60, cooldown_s=0)
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0), (-5, 5, 30), (5, 5, 40), (-5, 5, 200)])
    assert decisions(client, device, auth) == [(c["id"], "exit", False, "stay_too_short"),
                                               (c["id"], "exit", True, None)]


def test_zones_that_join_a_tag_later_are_targeted(client: TestClient, mall: dict) -> None:
    c = campaign(client, targets={"tags": ["food"]})
    kiosk = create_zone(client, "mall", shapely.box(100, 0, 110, 10), name="Kiosk", kind="custom", tags=["food"])
    assert client.get(f"/v1/venues/mall/campaigns/{c['id']}").json()["zone_ids"] == sorted(
        [mall["food"]["id"], kiosk["id"]])
    device, auth = shopper(client)
    walk(client, device, auth, [(105, 5, 0)])
    assert decisions(client, device, auth) == [(c["id"], "enter", True, None)]


@pytest.mark.parametrize(("change", "says"), [
    ({"schedule": {"starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"}}, "never fire"),
    ({"schedule": {"days": []}}, "days is empty"),
    ({"schedule": {"hours": ["10:00", "10:00"]}}, "no time never fires"),
    ({"schedule": {"hours": ["25:00", "10:00"]}}, "not a time of day"),
    ({"schedule": {"ends_at": "2020-01-01T00:00:00Z"}}, "in the past"),
    ({"targets": {}}, "at least one zone"),
    ({"targets": {"tags": ["nothing-has-this"]}}, "no active zone"),
    ({"targets": {"zone_ids": [999]}}, "zone 999 does not exist"),
    ({"targets": {"store_ids": [999]}}, "store 999 does not exist"),
    ({"min_stay_s": 60}, "for dwell and exit"),
    ({"trigger": "dwell", "min_stay_s": 9000}, "never reports"),
    ({"incentives": [{"segment": "*", "text": "5 %"}]}, "no title or body says {incentive}"),
    ({"content": {"title": "Hi {incentive}", "body": "b"}}, "no incentive tiers"),
    ({"content": {"title": "t", "body": "b", "texts": {"Danish": {"title": "t", "body": "b"}}}}, "language codes"),
    ({"content": {"title": "t", "body": "b", "deep_link": "not a link"}}, "is not a URL"),
    ({"trigger": "teleport"}, "Input should be"),
    ({"budget": 0}, "greater than or equal to 1"),
])
def test_campaigns_that_cannot_fire_are_refused(client: TestClient, mall: dict, change: dict, says: str) -> None:
    body: dict = {"name": "X", "trigger": "enter", "status": "active", "targets": {"kinds": ["food_court"]},
                  "content": {"title": "t", "body": "b"}} | change
    r = client.post("/v1/venues/mall/campaigns", json=body)
    assert r.status_code == 422 and says in r.text, r.text
    assert client.get("/v1/venues/mall/campaigns").json() == []


def test_an_update_that_breaks_the_campaign_changes_nothing(client: TestClient, mall: dict) -> None:
    c = campaign(client)
    r = client.patch(f"/v1/venues/mall/campaigns/{c['id']}", json={"min_stay_s": 30})
    assert r.status_code == 422 and "for dwell and exit" in r.text
    r = client.patch(f"/v1/venues/mall/campaigns/{c['id']}", json={"targets": {"zone_ids": [12345]}})
    assert r.status_code == 422
    assert client.get(f"/v1/venues/mall/campaigns/{c['id']}").json() == c
    assert client.patch("/v1/venues/mall/campaigns/999", json={"priority": 1}).status_code == 404


def test_dry_run_on_a_made_up_walk(client: TestClient, mall: dict) -> None:
    client.put("/v1/venues/mall/push-policy", json={**OPEN_POLICY, "max_per_day": 1})
    c = campaign(client, status="draft", cooldown_s=0, schedule={"days": ["sat", "sun"]})
    sat = datetime(2026, 12, 5, 12, tzinfo=LONDON)
    events = [{"kind": "enter", "zone_id": mall["food"]["id"], "at": (sat + timedelta(minutes=m)).isoformat()}
              for m in (0, 10, 70)]
    events.append({"kind": "enter", "zone_id": mall["food"]["id"], "at": (sat + timedelta(days=2)).isoformat()})
    r = client.post(f"/v1/campaigns/{c['id']}/simulate", json={"events": events, "segment": "returning"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["triggers"] == 4 + 2  # each enter, and the first visit of each day
    assert [(s["sent"], s["reason"]) for s in out["steps"]] == [(True, None), (False, "daily_cap"),
                                                               (False, "daily_cap"), (False, "schedule")]
    assert out["sent"] == 1
    assert client.get(f"/v1/venues/mall/campaigns/{c['id']}").json()["sends"] == 0  # nothing happened for real


def test_dry_run_on_a_recorded_walk_matches_what_happened(client: TestClient, mall: dict) -> None:
    c = campaign(client, cooldown_s=0)
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0), (-5, 5, 30), (5, 5, 60)])
    live = [(r[2], r[3]) for r in decisions(client, device, auth)]
    # replay the same walk against a fresh budget: the same verdicts
    r = client.post(f"/v1/campaigns/{c['id']}/simulate", json={"device_id": device,
                                                               "since": (START - timedelta(seconds=1)).isoformat()})
    assert [(s["sent"], s["reason"]) for s in r.json()["steps"]] == live


def test_dry_run_refusals(client: TestClient, mall: dict) -> None:
    c = campaign(client)
    assert client.post(f"/v1/campaigns/{c['id']}/simulate", json={}).status_code == 422
    r = client.post(f"/v1/campaigns/{c['id']}/simulate", json={"events": [
        {"kind": "enter", "zone_id": 999, "at": datetime.now(UTC).isoformat()}]})
    assert r.status_code == 422 and "zone 999" in r.text
    assert client.post("/v1/campaigns/999/simulate", json={"events": []}).status_code == 404


def test_a_shoppers_segment_is_explained(client: TestClient, mall: dict) -> None:
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0)])
    r = client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L1"})
    seg = client.get(f"/v1/venues/mall/shoppers/{r.json()['id']}/segment").json()
    assert seg["segment"] == "new" and seg["explain"]["visit_days_before_today"] == 0


def test_the_nightly_segment_job_places_everyone(client: TestClient, mall: dict, settings) -> None:  # type: ignore[no-untyped-def]
    from mallfence.cli import main as cli

    for _ in range(3):
        device, auth = shopper(client)
        walk(client, device, auth, [(5, 5, 0)])
    assert cli(["--database-url", settings.database_url, "segments", "--venue", "mall"]) == 0
    counts = client.get("/v1/venues/mall/segments").json()
    assert counts["segments"] == {"new": 3} and counts["as_of"] is not None
    assert cli(["--database-url", settings.database_url, "segments", "--venue", "nowhere"]) == 2


def test_a_holdout_group_is_logged_not_sent_and_stable(client: TestClient, mall: dict) -> None:
    c = campaign(client, holdout=0.5, cooldown_s=0)
    outcomes = []
    for _ in range(24):
        device, auth = shopper(client)
        walk(client, device, auth, [(5, 5, 0)])
        [(_, _, sent, reason)] = decisions(client, device, auth)
        outcomes.append((sent, reason))
        if reason == "holdout":
            assert pushes(client, device, auth) == []
            walk(client, device, auth, [(-5, 5, 3600), (5, 5, 3700)])  # the same shopper stays held out
            assert decisions(client, device, auth)[-1][3] == "holdout"
    held = outcomes.count((False, "holdout"))
    assert outcomes.count((True, None)) + held == 24 and 4 <= held <= 20  # about half, from a hash, not a coin
    assert client.get(f"/v1/venues/mall/campaigns/{c['id']}").json()["sends"] == 24 - held


def test_the_app_reports_a_push_opened(client: TestClient, mall: dict) -> None:
    campaign(client)
    device, auth = shopper(client)
    walk(client, device, auth, [(5, 5, 0)])
    [d] = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()
    assert d["opened_at"] is None
    url = f"/v1/devices/{device}/notifications/{d['notification_id']}/opened"
    assert client.post(url, headers=auth).status_code == 204
    assert client.get(f"/v1/devices/{device}/decisions", headers=auth).json()[0]["opened_at"] is not None
    other, other_auth = shopper(client)
    assert client.post(f"/v1/devices/{other}/notifications/{d['notification_id']}/opened",
                       headers=other_auth).status_code == 404
