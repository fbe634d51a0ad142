"""A fixed, hand-countable week-day of a small mall for the analytics tests (numbers in tests/api/test_analytics.py).

Venue "harbour", Europe/Copenhagen (UTC+1 in November). Zones: Books (store), Cafe (store), a corridor
(not a path kind), the venue outline. Three registered devices d1, d2, d3 (one shopper each). Times are UTC,
Monday 2 November 2026; the events are written straight to the table (the API refuses fixes a day old),
purchases come through the signed POS webhook, decisions and notifications straight to their tables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select

from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.delivery.models import Notification
from mallfence.devices.models import Device
from mallfence.engagement.models import Decision
from mallfence.tracking.models import Event
from tests.commerce_factories import commerce_secret, post_signed
from tests.factories import ANCHOR, create_zone, register

SLUG = "harbour"
DAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


def at(hhmm: str, day: int = 0) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return DAY + timedelta(days=day, hours=h, minutes=m)


# (device, zone, enter, exit or None); the exit's duration_s is exit - enter.
VISITS = [
    ("d1", "outline", "09:00", None),
    ("d1", "books", "09:10", "09:14"),    # 240 s
    ("d1", "corridor", "09:15", "09:19"),  # 240 s, a corridor: no path step
    ("d1", "cafe", "09:20", "09:25"),     # 300 s: books -> cafe
    ("d1", "books", "09:50", "09:55"),    # 300 s: cafe -> books
    ("d1", "books", "10:05", "10:06"),    # 60 s: books -> books is no move
    ("d2", "outline", "09:25", None),
    ("d2", "books", "09:30", "09:40"),    # 600 s
    ("d2", "cafe", "09:45", "11:05"),     # 4800 s: books -> cafe
    ("d3", "outline", "23:20", None),     # Tuesday 00:20 in Copenhagen
    ("d3", "books", "23:30", "23:50"),    # 1200 s, Tuesday 00:30 local
]
LATE = ("d3", "cafe", (1, "03:00"))  # Tuesday 03:00 UTC, 3.5 h after d3's last enter: another trip, no move


def build(client: TestClient, database_url: str) -> dict[str, Any]:
    r = client.post("/v1/venues", json={"slug": SLUG, "name": "Harbour", "timezone": "Europe/Copenhagen",
                                         "anchor": list(ANCHOR)})
    assert r.status_code == 201, r.text
    assert client.post(f"/v1/venues/{SLUG}/levels", json={"ordinal": 0, "name": "Ground"}).status_code == 201
    zones = {
        "outline": create_zone(client, SLUG, shapely.box(-50, -50, 150, 120), name="Harbour", kind="venue", level=None),
        "books": create_zone(client, SLUG, shapely.box(0, 0, 20, 20), name="Books", store={"name": "Tideline Books"}),
        "cafe": create_zone(client, SLUG, shapely.box(60, 0, 80, 20), name="Cafe", store={"name": "Harbour Cafe"}),
        "corridor": create_zone(client, SLUG, shapely.box(20, 0, 60, 20), name="Corridor", kind="corridor"),
    }
    devices = {name: register(client, SLUG)[0] for name in ("d1", "d2", "d3")}
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        shoppers = {n: s.scalar(select(Device.shopper_id).where(Device.id == d)) for n, d in devices.items()}
    world = {"zones": {k: z["id"] for k, z in zones.items()}, "devices": devices, "shoppers": shoppers,
             "stores": {k: zones[k]["store"]["id"] for k in ("books", "cafe")}, "engine": engine, "sessions": sessions}
    with transaction(sessions) as s:
        venue_id = s.scalar(select(Device.venue_id).where(Device.id == devices["d1"]))
        world["venue_id"] = venue_id
        for device, zone, enter, leave in VISITS:
            add_event(s, world, device, zone, "enter", at(enter))
            if leave:
                add_event(s, world, device, zone, "exit", at(leave), (at(leave) - at(enter)).total_seconds())
    return world


def add_event(s: Any, world: dict[str, Any], device: str, zone: str, kind: str, when: datetime,
              duration_s: float | None = None) -> None:
    s.add(Event(venue_id=world["venue_id"], device_id=world["devices"][device], zone_id=world["zones"][zone],
                kind=kind, occurred_at=when, recorded_at=when + timedelta(seconds=1), duration_s=duration_s))


def add_late_event(world: dict[str, Any]) -> None:
    device, zone, (day, hhmm) = LATE
    with transaction(world["sessions"]) as s:
        add_event(s, world, device, zone, "enter", at(hhmm, day))


def add_campaign(client: TestClient, world: dict[str, Any]) -> dict[str, Any]:
    """A campaign on Books with a holdout, its decisions and notifications, and POS purchases.

    d1: sent 09:00, acked 09:01, opened 09:02; enters Books 09:10; buys at Books 09:12.
    d2: suppressed 07:00 (min_gap); sent 08:00, never acked; enters Books 09:30; buys at the Cafe 09:50
        (not a target) and at Books on Tuesday 09:30 (25.5 h after the push: outside 24 h).
    d3: held out 22:00; enters Books 23:30; buys at Books 23:40.
    """
    r = client.post(f"/v1/venues/{SLUG}/campaigns", json={
        "name": "Books week", "trigger": "enter", "targets": {"store_ids": [world["stores"]["books"]]},
        "content": {"title": "Books", "body": "10 % off"}, "holdout": 0.5})
    assert r.status_code == 201, r.text
    campaign = r.json()["id"]
    with transaction(world["sessions"]) as s:
        def decide(device: str, when: datetime, sent: bool, reason: str | None, *, acked: datetime | None = None,
                   opened: datetime | None = None) -> None:
            note = None
            if sent:
                note = Notification(venue_id=world["venue_id"], device_id=world["devices"][device],
                                    dedupe_key=f"t:{device}:{when.isoformat()}", category="marketing", title="Books",
                                    body="10 % off", expires_at=when + timedelta(hours=1), created_at=when,
                                    status="delivered" if acked else "sent", delivered_at=acked)
                s.add(note)
                s.flush()
            s.add(Decision(venue_id=world["venue_id"], device_id=world["devices"][device],
                           shopper_id=world["shoppers"][device], campaign_id=campaign, trigger="enter", kind="campaign",
                           category="marketing", sent=sent, reason=reason, dedupe_key=f"d:{device}:{when.isoformat()}",
                           notification_id=note.id if note else None, at=when, opened_at=opened,
                           zone_id=world["zones"]["outline"]))

        decide("d1", at("09:00"), True, None, acked=at("09:01"), opened=at("09:02"))
        decide("d2", at("07:00"), False, "min_gap")
        decide("d2", at("08:00"), True, None)
        decide("d3", at("22:00"), False, "holdout")
    secret = commerce_secret(client, SLUG)
    for receipt, device, store, when in [("R1", "d1", "books", at("09:12")), ("R2", "d2", "cafe", at("09:50")),
                                         ("R3", "d2", "books", at("09:30", 1)), ("R4", "d3", "books", at("23:40"))]:
        r = post_signed(client, secret, "purchases", {
            "external_id": receipt, "shopper_id": world["shoppers"][device], "store_id": world["stores"][store],
            "amount": "10.00", "currency": "DKK", "purchased_at": when.isoformat()}, slug=SLUG)
        assert r.status_code == 201, r.text
    return {"id": campaign}
