"""Analytics on a month of a busy mall: answers from the hourly rollups vs the same answers straight from
the event log, on PostgreSQL+PostGIS and on SQLite, in the same run.

A venue with 100 stores, 10 food courts, 8 entrances, 6 corridors and its outline; --trips shopper trips
over 30 days (afternoon-heavy, more on weekends; a trip: outline, an entrance, 1-6 stores with
log-normal stays, now and then a food court, a corridor before each), ~19 events each. One campaign
on 5 stores with ~20k decisions (10 % held out) and ~30k POS purchases. Data is written with COPY / executemany, then
`roll_up` builds zone_hourly from scratch (timed), then each question runs --repeat times over the
whole month: "rollup" is the API's path; "events" is the same code with the rollup's position set back
to 0, so every cell is computed from the events (what the API would cost without rollups). The funnel
reads no rollup: its time is shown once.

    .venv/bin/python bench/analytics.py [--trips 100000] [--backends postgis,sqlite] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import shapely
import sqlalchemy as sa
from sqlalchemy import update
from sqlalchemy.orm import Session

from mallfence import migrate
from mallfence.analytics import funnel, rollup, service
from mallfence.analytics.models import RollupState
from mallfence.analytics.window import window
from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.engagement.models import Campaign
from mallfence.venues.models import Store, Venue, Zone

PG_URL = os.environ.get("MALLFENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TZ = ZoneInfo("Europe/London")
START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
ZONES = {"venue": [1], "entrance": list(range(2, 10)), "corridor": list(range(10, 16)),
         "store": list(range(16, 116)), "food_court": list(range(116, 126))}
EVENT_COLS = ("venue_id", "device_id", "zone_id", "kind", "occurred_at", "recorded_at", "duration_s", "source")


def build_zones(session: Session) -> dict[str, list[int]]:
    venue = Venue(slug="busy", name="Busy Mall", timezone=TZ.key, anchor_lon=-2.24, anchor_lat=53.48)
    session.add(venue)
    session.flush()
    kinds = {"venue": 1, "entrance": 8, "corridor": 6, "store": 100, "food_court": 10}
    out: dict[str, list[int]] = {k: [] for k in kinds}
    for kind, n in kinds.items():
        for i in range(n):
            box = shapely.box(-2.24 + i * 1e-4, 53.48, -2.24 + i * 1e-4 + 5e-5, 53.48 + 5e-5)
            zone = Zone(venue_id=venue.id, name=f"{kind} {i}", kind=kind, geometry=box, area=box, tags=[],
                        meta={}, presence={})
            session.add(zone)
            session.flush()
            out[kind].append(zone.id)
            if kind == "store":
                session.add(Store(venue_id=venue.id, zone_id=zone.id, name=f"Store {i}", opening_hours={}))
    session.flush()
    return out


def generate(zones: dict[str, list[int]], trips: int, devices: int, seed: int) -> list[tuple[Any, ...]]:
    """Event rows (without venue id and source) of ``trips`` trips by a pool of ``devices`` app installs."""
    rng = random.Random(seed)
    hours = [h for h in range(9, 21) for _ in range(3 if 12 <= h <= 17 else 1)]
    rows: list[tuple[Any, ...]] = []
    outline = zones["venue"][0]
    for _ in range(trips):
        device = f"dev-{int(rng.paretovariate(1.2) * 97) % devices:06d}"
        day = rng.randrange(DAYS)
        if (START + timedelta(days=day)).weekday() < 5 and rng.random() < 0.3:
            day = rng.randrange(DAYS)  # weekends busier: weekday trips re-drawn now and then
        t = START + timedelta(days=day, hours=rng.choice(hours), minutes=rng.random() * 60)
        first = t
        rows.append((device, outline, "enter", t, None))
        door = rng.choice(zones["entrance"])
        rows += [(device, door, "enter", t, None), (device, door, "exit", t + timedelta(seconds=20), 20.0)]
        t += timedelta(seconds=40)
        places = rng.sample(zones["store"], rng.randint(1, 6))
        if rng.random() < 0.4:
            places.insert(rng.randrange(len(places) + 1), rng.choice(zones["food_court"]))
        for zone in places:
            hall = rng.choice(zones["corridor"])
            walk = rng.uniform(30, 240)
            rows += [(device, hall, "enter", t, None), (device, hall, "exit", t + timedelta(seconds=walk), walk)]
            t += timedelta(seconds=walk)
            stay = min(rng.lognormvariate(5.9, 0.9), 3 * 3600)
            rows += [(device, zone, "enter", t, None), (device, zone, "exit", t + timedelta(seconds=stay), stay)]
            t += timedelta(seconds=stay + 5)
        rows.append((device, outline, "exit", t, (t - first).total_seconds()))
    rows.sort(key=lambda r: r[3])  # the log is written in time order, as live ingest does
    return rows


def load(engine: sa.Engine, venue_id: int, rows: list[tuple[Any, ...]], devices: list[str]) -> None:
    now = datetime.now(UTC)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy("COPY shoppers (id, venue_id, created_at, updated_at) FROM STDIN") as cp:
                for d in devices:
                    cp.write_row((d, venue_id, now, now))
            with cur.copy("COPY devices (id, venue_id, shopper_id, token_hash, platform, preferences, created_at) "
                          "FROM STDIN") as cp:
                for d in devices:
                    cp.write_row((d, venue_id, d, d, "android", "{}", now))
            with cur.copy(f"COPY events ({', '.join(EVENT_COLS)}) FROM STDIN") as cp:
                for device, zone, kind, at, dur in rows:
                    cp.write_row((venue_id, device, zone, kind, at, at + timedelta(seconds=1), dur, "gps"))
        else:
            def ts(t: datetime) -> str:
                return t.strftime("%Y-%m-%d %H:%M:%S.%f")

            stamp = ts(now)
            cur.executemany("INSERT INTO shoppers (id, venue_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
                            [(d, venue_id, stamp, stamp) for d in devices])
            cur.executemany("INSERT INTO devices (id, venue_id, shopper_id, token_hash, platform, preferences, "
                            "created_at) VALUES (?, ?, ?, ?, 'android', '{}', ?)",
                            [(d, venue_id, d, d, stamp) for d in devices])
            cur.executemany(f"INSERT INTO events ({', '.join(EVENT_COLS)}) VALUES (?, ?, ?, ?, ?, ?, ?, 'gps')",
                            ((venue_id, d, z, k, ts(at), ts(at + timedelta(seconds=1)), dur)
                             for d, z, k, at, dur in rows))
        raw.commit()
    finally:
        raw.close()


def add_campaign(session: Session, venue_id: int, stores: list[int], devices: list[str], seed: int) -> int:
    """A campaign on five stores, its decisions (10 % held out, a fifth opened) and the venue's purchases."""
    rng = random.Random(seed)
    targets = stores[:5]
    store_ids = [s for (s,) in session.execute(sa.select(Store.id).where(Store.zone_id.in_(stores)))]
    campaign = Campaign(venue_id=venue_id, name="Autumn", status="active", trigger="enter",
                        targets={"zone_ids": targets}, schedule={}, audience={}, content={"title": "t", "body": "b"},
                        incentives=[], holdout=0.1, skus=[])
    session.add(campaign)
    session.flush()
    decisions, purchases = [], []
    for i in range(20_000):
        device = rng.choice(devices)
        at = START + timedelta(seconds=rng.random() * DAYS * 86400)
        held = int(device[-5:]) % 10 == 0
        decisions.append({"venue_id": venue_id, "device_id": device, "shopper_id": device, "campaign_id": campaign.id,
                          "trigger": "enter", "kind": "campaign", "category": "marketing", "sent": not held,
                          "reason": "holdout" if held else None, "detail": {}, "dedupe_key": f"b{i}", "at": at,
                          "opened_at": at + timedelta(minutes=3) if not held and rng.random() < 0.2 else None,
                          "decided_at": at})
    for i in range(30_000):
        device = rng.choice(devices)
        at = START + timedelta(seconds=rng.random() * DAYS * 86400)
        purchases.append({"venue_id": venue_id, "external_id": f"R{i}", "shopper_id": device,
                          "store_id": rng.choice(store_ids), "amount_minor": rng.randint(500, 20000),
                          "currency": "GBP", "items": [], "purchased_at": at, "recorded_at": at})
    from mallfence.commerce.models import Purchase
    from mallfence.engagement.models import Decision

    session.execute(sa.insert(Decision), decisions)
    session.execute(sa.insert(Purchase), purchases)
    return campaign.id


def rounded(value: Any) -> Any:
    """Floats to 9 significant digits: sums of durations differ in the last bits by the order they add up."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def timed(fn: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def prepare(url: str, rows: list[tuple[Any, ...]], args: argparse.Namespace) -> tuple[float, float]:
    """Write the month into a fresh database and build the rollups: (load s, rollup build s)."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as s:
        zones = build_zones(s)
        assert zones == ZONES, "a fresh database numbers zones from 1, as generate() assumed"
        venue_id = s.scalar(sa.select(Venue.id).where(Venue.slug == "busy"))
    devices = sorted({r[0] for r in rows})
    t0 = time.perf_counter()
    load(engine, venue_id, rows, devices)
    loaded = time.perf_counter() - t0
    with transaction(sessions) as s:
        add_campaign(s, venue_id, zones["store"], devices, args.seed)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as c:
            c.exec_driver_sql("ANALYZE")
    t0 = time.perf_counter()
    with transaction(sessions) as s:
        rollup.roll_up(s, lag_s=0, max_events=len(rows) + 10)
    built = time.perf_counter() - t0
    engine.dispose()
    return loaded, built


def run(name: str, url: str, rows: list[tuple[Any, ...]], args: argparse.Namespace) -> dict[str, Any]:
    loaded, built = prepare(url, rows, args) if not args.reuse else (0.0, 0.0)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        venue_id = s.scalar(sa.select(Venue.id).where(Venue.slug == "busy"))
        campaign_id = s.scalar(sa.select(Campaign.id).where(Campaign.venue_id == venue_id))
        events = s.scalar(sa.select(sa.func.count()).select_from(sa.table("events")))
    zones = ZONES

    w = window(start=START, end=START + timedelta(days=DAYS), tz=TZ)
    wd = window(start=START, end=START + timedelta(days=DAYS), tz=TZ, by_day=True)
    questions: dict[str, Callable[[Session, Venue], Any]] = {
        "footfall hour": lambda s, v: service.footfall(s, venue=v, w=w, bucket="hour", zone_id=None),
        "footfall day": lambda s, v: service.footfall(s, venue=v, w=wd, bucket="day", zone_id=None),
        "footfall 1 zone": lambda s, v: service.footfall(s, venue=v, w=w, bucket="hour", zone_id=zones["store"][0]),
        "dwell": lambda s, v: service.dwell(s, venue=v, w=w, zone_id=None),
        "peak hours": lambda s, v: service.peak_hours(s, venue=v, w=w, zone_id=None),
    }
    results: dict[str, Any] = {"events": events, "load_s": loaded, "rollup_build_s": built, "questions": {}}
    for label, ask in questions.items():
        with sessions() as s:
            venue = s.get(Venue, venue_id)
            fast = timed(lambda: ask(s, venue), args.repeat)  # noqa: B023
            answer = ask(s, venue)
            s.execute(update(RollupState).values(last_event_id=0))  # as if no rollup existed (rolled back)
            slow = timed(lambda: ask(s, venue), 1 if events > 500_000 else args.repeat)  # noqa: B023
            assert rounded(ask(s, venue)) == rounded(answer), f"{label}: rollup and events disagree"
            s.rollback()
        results["questions"][label] = (fast, slow)
    with sessions() as s:
        venue, campaign = s.get(Venue, venue_id), s.get(Campaign, campaign_id)
        results["funnel_s"] = timed(lambda: funnel.funnel(s, venue=venue, campaign=campaign, w=w, visit_window_h=24),
                                    args.repeat)
        results["transitions_s"] = timed(lambda: service.transitions(s, venue=venue, w=w, limit=20), 1)
    engine.dispose()
    print_results(name, results)
    sys.stdout.flush()
    return results


def print_results(name: str, r: dict[str, Any]) -> None:
    print(f"\n{name}: {r['events']:,} events loaded in {r['load_s']:.1f} s; zone_hourly built in "
          f"{r['rollup_build_s']:.1f} s")
    print(f"  {'question (30 days, all zones)':<32}{'rollup':>10}{'events':>10}{'ratio':>8}")
    for label, (fast, slow) in r["questions"].items():
        print(f"  {label:<32}{fast * 1000:>8.0f}ms{slow * 1000:>8.0f}ms{slow / fast:>7.1f}x")
    print(f"  {'funnel (20k decisions, no rollup)':<32}{r['funnel_s'] * 1000:>8.0f}ms")
    print(f"  {'transitions (window function)':<32}{r['transitions_s'] * 1000:>8.0f}ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trips", type=int, default=100_000)
    p.add_argument("--devices", type=int, default=60_000)
    p.add_argument("--backends", default="postgis,sqlite")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for --reuse")
    p.add_argument("--reuse", help="URL of a database a --keep run left: only ask the questions")
    args = p.parse_args()
    if args.reuse:  # a database an earlier --keep run left: ask the questions again
        run("reused", args.reuse, [], args)
        return
    t0 = time.perf_counter()
    rows = generate(ZONES, args.trips, args.devices, args.seed)
    print(f"generated {len(rows):,} events of {args.trips:,} trips in {time.perf_counter() - t0:.1f} s", flush=True)
    for backend in args.backends.split(","):
        if backend == "postgis":
            admin = sa.create_engine(sa.make_url(PG_URL).set(drivername="postgresql+psycopg"),
                                     isolation_level="AUTOCOMMIT")
            db = f"mallfence_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as c:
                c.exec_driver_sql(f'CREATE DATABASE "{db}"')
            try:
                run("PostgreSQL+PostGIS", sa.make_url(PG_URL).set(drivername="postgresql+psycopg", database=db)
                    .render_as_string(hide_password=False), rows, args)
            finally:
                if args.keep:
                    print(f"kept {db} (--reuse postgresql+psycopg://…/{db}; drop it when done)")
                else:
                    with admin.connect() as c:
                        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                admin.dispose()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", rows, args)


if __name__ == "__main__":
    main()
