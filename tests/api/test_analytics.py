"""Analytics answers against numbers counted by hand on a fixed day (tests/analytics_world.py), on SQLite
and PostGIS, before and after the rollup job, and what bad questions get back."""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select

from mallfence import cli
from mallfence.analytics.models import ZoneDaily, ZoneHourly
from mallfence.analytics.stats import percentile
from mallfence.config import Settings
from mallfence.db import transaction
from tests import analytics_world as aw
from tests.factories import create_venue, create_zone, fix, register

RANGE = {"from": "2026-11-02T00:00:00Z", "to": "2026-11-03T06:00:00Z"}
BASE = f"/v1/venues/{aw.SLUG}/analytics"


@pytest.fixture
def world(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    w = aw.build(client, settings.database_url)
    yield w
    w["engine"].dispose()


def get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"{BASE}/{path}", params={**RANGE, **params})
    assert r.status_code == 200, r.text
    return r.json()


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {z["name"]: z for z in body["zones"]}


def rollup(settings: Settings) -> None:
    assert cli.main(["--database-url", settings.database_url, "rollup", "--lag-s", "0"]) == 0


def test_footfall_per_hour_counts_enters_and_distinct_devices(client: TestClient, world: dict[str, Any]) -> None:
    body = get(client, "footfall")
    assert (body["bucket"], body["from"], body["to"]) == ("hour", "2026-11-02T00:00:00+00:00",
                                                          "2026-11-03T06:00:00+00:00")
    assert [(z["name"], z["visits"], z["unique_shoppers"]) for z in body["zones"]] == [
        ("Books", 5, 3), ("Harbour", 3, 3), ("Cafe", 2, 2), ("Corridor", 1, 1)]
    zones = by_name(body)
    # 09:00-10:00: d1 twice, d2 once -> 3 visits by 2 shoppers; 10:00 d1; 23:00 d3.
    assert [(p["start"], p["visits"], p["unique_shoppers"]) for p in zones["Books"]["series"]] == [
        ("2026-11-02T09:00:00+00:00", 3, 2), ("2026-11-02T10:00:00+00:00", 1, 1), ("2026-11-02T23:00:00+00:00", 1, 1)]
    assert zones["Books"]["kind"] == "store" and zones["Harbour"]["kind"] == "venue"
    one = get(client, "footfall", zone_id=world["zones"]["cafe"])
    assert [(z["name"], z["visits"], z["unique_shoppers"], len(z["series"])) for z in one["zones"]] == [
        ("Cafe", 2, 2, 1)]


def test_footfall_per_day_uses_the_venue_calendar(client: TestClient, world: dict[str, Any]) -> None:
    aw.add_late_event(world)
    body = get(client, "footfall", bucket="day")
    # Widened to whole Copenhagen days (UTC+1): Monday 00:00 local to Wednesday 00:00 local.
    assert (body["from"], body["to"], body["timezone"]) == ("2026-11-01T23:00:00+00:00", "2026-11-03T23:00:00+00:00",
                                                            "Europe/Copenhagen")
    zones = by_name(body)
    # d3's 23:30 UTC visit is on Tuesday in Copenhagen.
    assert [(p["start"], p["visits"], p["unique_shoppers"]) for p in zones["Books"]["series"]] == [
        ("2026-11-02T00:00:00+01:00", 4, 2), ("2026-11-03T00:00:00+01:00", 1, 1)]
    assert [(p["start"], p["visits"], p["unique_shoppers"]) for p in zones["Cafe"]["series"]] == [
        ("2026-11-02T00:00:00+01:00", 2, 2), ("2026-11-03T00:00:00+01:00", 1, 1)]
    assert (zones["Cafe"]["visits"], zones["Cafe"]["unique_shoppers"]) == (3, 3)


def test_dwell_statistics_and_histogram(client: TestClient, world: dict[str, Any]) -> None:
    zones = by_name(get(client, "dwell"))
    books = zones["Books"]  # stays of 60, 240, 300, 600, 1200 s
    assert (books["count"], books["mean_s"], books["p50_s"]) == (5, 480.0, 300.0)
    assert books["p90_s"] == pytest.approx(960.0)  # 600 + 0.6 * (1200 - 600)
    assert [h["count"] for h in books["histogram"]] == [0, 2, 2, 1, 0, 0]
    assert [h["bin"] for h in books["histogram"]] == ["<1 min", "1-5 min", "5-15 min", "15-30 min", "30-60 min",
                                                      ">60 min"]
    cafe = zones["Cafe"]  # 300 and 4800 s
    assert (cafe["count"], cafe["mean_s"], cafe["p50_s"]) == (2, 2550.0, 2550.0)
    assert cafe["p90_s"] == pytest.approx(4350.0)
    assert [h["count"] for h in cafe["histogram"]] == [0, 0, 1, 0, 0, 1]
    assert (zones["Harbour"]["count"], zones["Harbour"]["mean_s"], zones["Harbour"]["p50_s"]) == (0, None, None)


def test_transitions_between_places(client: TestClient, world: dict[str, Any]) -> None:
    aw.add_late_event(world)  # d3 reaches the Cafe 3.5 h after Books: another trip, not a move
    body = get(client, "transitions")
    moves = [(t["from_zone"]["name"], t["to_zone"]["name"], t["count"], t["shoppers"]) for t in body["transitions"]]
    # d1: Books -> (corridor, not counted) -> Cafe -> Books -> Books (no move); d2: Books -> Cafe.
    assert moves == [("Books", "Cafe", 2, 2), ("Cafe", "Books", 1, 1)]
    assert body["kinds"] == ["store", "food_court", "entrance", "pickup"] and body["max_gap_s"] == 7200
    assert get(client, "transitions", limit=1)["transitions"][0]["count"] == 2


def test_peak_hours_count_arrivals_in_venue_time(client: TestClient, world: dict[str, Any]) -> None:
    body = get(client, "peak-hours")
    assert body["counted"] == "venue outline" and body["zone_ids"] == [world["zones"]["outline"]]
    # Arrivals at 09:00 and 09:25 UTC = 10:xx Monday in Copenhagen; 23:20 UTC = 00:20 Tuesday.
    assert body["grid"]["mon"][10] == 2 and body["grid"]["tue"][0] == 1
    assert sum(map(sum, body["grid"].values())) == 3
    assert body["busiest"] == {"weekday": "mon", "hour": 10, "visits": 2}
    assert [d["visits"] for d in body["by_weekday"]] == [2, 1, 0, 0, 0, 0, 0]
    books = get(client, "peak-hours", zone_id=world["zones"]["books"])
    assert books["grid"]["mon"][10] == 3 and books["grid"]["mon"][11] == 1 and books["grid"]["tue"][0] == 1


def test_campaign_funnel_and_lift_over_the_holdout(client: TestClient, world: dict[str, Any]) -> None:
    campaign = aw.add_campaign(client, world)
    body = get(client, f"campaigns/{campaign['id']}/funnel")
    assert [(s["stage"], s["count"]) for s in body["stages"]] == [
        ("decided", 4), ("sent", 2), ("delivered", 1), ("opened", 1), ("visited", 2), ("purchased", 1)]
    assert body["target_zone_ids"] == [world["zones"]["books"]] and body["purchase_at"] == "targeted stores"
    t, h = body["groups"]["treatment"], body["groups"]["holdout"]
    assert (t["shoppers"], t["visited"], t["purchased"], t["visit_rate"], t["purchase_rate"]) == (2, 2, 1, 1.0, 0.5)
    assert (h["shoppers"], h["visited"], h["purchased"], h["visit_rate"], h["purchase_rate"]) == (1, 1, 1, 1.0, 1.0)
    assert body["lift"]["visit"] == {"treatment_rate": 1.0, "holdout_rate": 1.0, "difference": 0.0, "ci95": None,
                                     "verdict": "too few to tell"}
    assert body["lift"]["purchase"]["difference"] == -0.5
    assert body["lift"]["purchase"]["verdict"] == "too few to tell"
    # One hour: only d1 came (10 min after its push) and bought; d2 and d3 came 1.5 h after theirs.
    short = get(client, f"campaigns/{campaign['id']}/funnel", visit_window_h=1)
    assert [s["count"] for s in short["stages"]][-2:] == [1, 1]
    assert (short["groups"]["holdout"]["visited"], short["groups"]["holdout"]["purchased"]) == (0, 0)


def test_answers_do_not_depend_on_whether_the_rollup_ran(client: TestClient, world: dict[str, Any],
                                                         settings: Settings) -> None:
    paths = [("footfall", {}), ("footfall", {"bucket": "day"}), ("dwell", {}), ("peak-hours", {}),
             ("transitions", {})]
    before = [get(client, p, **q) for p, q in paths]
    rollup(settings)
    with world["sessions"]() as s:
        row = s.scalar(select(ZoneHourly).where(ZoneHourly.zone_id == world["zones"]["books"],
                                                ZoneHourly.hour == aw.at("09:00")))
        # Books 09:00-10:00: enters d1, d2, d1; exits after 240, 600, 300 s.
        assert (row.visits, row.visitors, row.stays, row.stay_s, row.dwell_1_5m, row.dwell_5_15m) == (
            3, 2, 3, 1140.0, 1, 2)
        days = s.execute(select(ZoneDaily.day_start, ZoneDaily.visitors).where(
            ZoneDaily.zone_id == world["zones"]["books"]).order_by(ZoneDaily.day_start)).all()
        # Copenhagen midnights: Monday (d1, d2) and Tuesday (d3).
        assert [(d.isoformat(), n) for d, n in days] == [("2026-11-01T23:00:00+00:00", 2),
                                                         ("2026-11-02T23:00:00+00:00", 1)]
    assert [get(client, p, **q) for p, q in paths] == before
    aw.add_late_event(world)  # after the job ran: read from the events until the next pass
    fresh = by_name(get(client, "footfall"))["Cafe"]
    assert (fresh["visits"], fresh["series"][-1]["start"]) == (3, "2026-11-03T03:00:00+00:00")
    rollup(settings)
    assert by_name(get(client, "footfall"))["Cafe"] == fresh
    # Another timezone moves the midnights: stored days of the old ones are not misread as the new ones.
    assert client.patch(f"/v1/venues/{aw.SLUG}", json={"timezone": "UTC"}).status_code == 200
    books = by_name(get(client, "footfall", bucket="day"))["Books"]
    assert [(p["start"], p["visits"], p["unique_shoppers"]) for p in books["series"]] == [
        ("2026-11-02T00:00:00+00:00", 5, 3)]
    assert cli.main(["--database-url", settings.database_url, "rollup", "--rebuild", "--lag-s", "0"]) == 0
    assert by_name(get(client, "footfall", bucket="day"))["Books"] == books  # days stored at the new midnights


def test_a_walk_through_the_api_shows_up(client: TestClient) -> None:
    create_venue(client, "walk")
    create_zone(client, "walk", shapely.box(0, 0, 20, 20), name="Books")
    device, auth = register(client, "walk")
    fixes = [fix(-10, 10, 0), fix(10, 10, 10), fix(10, 10, 100), fix(40, 10, 400)]
    r = client.post(f"/v1/devices/{device}/positions", json={"fixes": fixes}, headers=auth)
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    span = {"from": (now - timedelta(hours=3)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    foot = client.get("/v1/venues/walk/analytics/footfall", params=span).json()["zones"][0]
    assert (foot["name"], foot["visits"], foot["unique_shoppers"]) == ("Books", 1, 1)
    stay = client.get("/v1/venues/walk/analytics/dwell", params=span).json()["zones"][0]
    assert stay["count"] == 1 and stay["p50_s"] == pytest.approx(390.0)  # entered at 10 s, out at 400 s


@pytest.mark.parametrize(("path", "params", "loc", "says"), [
    ("footfall", {"from": "2026-11-03T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, ["query", "from"], "before to"),
    ("dwell", {"from": "2026-01-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, ["query", "to"], "at most 92 days"),
    ("footfall", {"zone_id": 999999}, ["query", "zone_id"], "zone 999999 does not exist"),
    ("peak-hours", {"zone_id": 999999}, ["query", "zone_id"], "does not exist"),
    ("footfall", {"bucket": "week"}, ["query", "bucket"], "hour"),
    ("footfall", {"from": "2026-11-02T00:00:00"}, ["query", "from"], "timezone"),
    ("transitions", {"limit": 0}, ["query", "limit"], "greater than or equal to 1"),
    ("campaigns/1/funnel", {"visit_window_h": 0}, ["query", "visit_window_h"], "greater than or equal to 1"),
])
def test_bad_questions_get_a_4xx_naming_the_field(client: TestClient, world: dict[str, Any], path: str,
                                                  params: dict[str, Any], loc: list[str], says: str) -> None:
    if path.startswith("campaigns"):
        aw.add_campaign(client, world)
    r = client.get(f"{BASE}/{path}", params={**RANGE, **params} if "from" not in params else params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == loc and says in detail["msg"], detail


def test_an_unknown_campaign_is_a_404_naming_it(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get(f"{BASE}/campaigns/999999/funnel")
    assert r.status_code == 404 and "campaign_id: campaign 999999 not found" in r.json()["detail"]


def test_report_writes_the_numbers_and_charts(client: TestClient, world: dict[str, Any], settings: Settings,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aw.add_campaign(client, world)
    args = ["--database-url", settings.database_url, "report", "--venue", aw.SLUG, "--from", RANGE["from"],
            "--to", RANGE["to"]]
    assert cli.main([*args, "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    # Books: 5 visits by 3 shoppers; 5 stays, mean 480 s, p50 300 s, p90 960 s.
    assert ("<td>Books</td><td>store</td><td>5</td><td>3</td><td>5</td><td>480.0</td><td>300.0</td><td>960.0</td>"
            in page)
    assert "<td>decided</td><td>4</td>" in page and "<td>purchased</td><td>1</td>" in page
    assert "<td>treatment</td><td>2</td><td>2</td><td>100.0 %</td><td>1</td><td>50.0 %</td>" in page
    assert "Visit lift: too few to tell" in page and "Busiest hour: mon 10:00 local, 2 arrivals" in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5  # footfall, days, dwell, peak hours, one funnel
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    assert cli.main([*args, "--out", str(tmp_path / "report.png")]) == 0
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    assert cli.main([*args[:-2], "--to", "2026-11-03T06:00:00", "--out", str(tmp_path / "x.html")]) == 2
    assert "--to: '2026-11-03T06:00:00' has no timezone offset" in capsys.readouterr().err
    assert cli.main(["--database-url", settings.database_url, "report", "--venue", "nowhere",
                     "--out", str(tmp_path / "x.html")]) == 2
    assert "venue 'nowhere' not found" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_dwell_percentiles_agree_with_the_definition_on_many_stays(client: TestClient, world: dict[str, Any]) -> None:
    """Both databases' percentile paths (percentile_cont; ranks on SQLite) against stats.percentile."""
    rng = random.Random(7)
    stays = {"books": [rng.uniform(1, 7200) for _ in range(101)], "cafe": [rng.uniform(1, 600) for _ in range(38)],
             "corridor": [rng.choice([30.0, 60.0]) for _ in range(4)]}
    with transaction(world["sessions"]) as s:
        for zone, durations in stays.items():
            for i, d in enumerate(durations):
                aw.add_event(s, world, "d1", zone, "exit", aw.at("12:00", 3) + timedelta(seconds=i), d)
    zones = by_name(get(client, "dwell", **{"from": "2026-11-05T00:00:00Z", "to": "2026-11-06T00:00:00Z"}))
    for zone, name in (("books", "Books"), ("cafe", "Cafe"), ("corridor", "Corridor")):
        ordered = sorted(stays[zone])
        assert zones[name]["count"] == len(ordered)
        assert zones[name]["p50_s"] == pytest.approx(percentile(ordered, 0.5))
        assert zones[name]["p90_s"] == pytest.approx(percentile(ordered, 0.9))
