"""Footfall, dwell, peak hours and paths of a venue over a window: hourly rollups where they add up, the
event log (by venue and time, by zone and time) where they do not (distinct shoppers over several hours,
percentiles, paths)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Integer, cast, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from mallfence.analytics import rollup
from mallfence.analytics.models import DWELL_EDGES_S
from mallfence.analytics.timesql import dialect, hour_floor, seconds_between
from mallfence.analytics.window import Window
from mallfence.db import UTCDateTime
from mallfence.errors import Invalid, Issue
from mallfence.tracking.models import Event
from mallfence.venues.models import Venue, Zone

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Paths count moves between places a shopper chooses to go; corridors, levels, departments and the venue
# outline nest around or inside those and would only repeat them.
PATH_KINDS = ("store", "food_court", "entrance", "pickup")
PATH_MAX_GAP_S = 2 * 3600.0  # a longer gap between two enters is another trip, not a move
QUANTILES = (0.5, 0.9)
BIN_LABELS = ("<1 min", "1-5 min", "5-15 min", "15-30 min", "30-60 min", ">60 min")


def zones_of(session: Session, *, venue: Venue, zone_id: int | None, kinds: Sequence[str] | None = None
             ) -> dict[int, Any]:
    """The venue's zones (id, name, kind) by id; only ``zone_id`` when given (422 naming it when the venue has
    no such zone), only ``kinds`` when given. Columns, not ORM zones: their geometry is not needed here."""
    q = select(Zone.id, Zone.name, Zone.kind).where(Zone.venue_id == venue.id)
    if zone_id is not None:
        q = q.where(Zone.id == zone_id)
    if kinds is not None:
        q = q.where(Zone.kind.in_(kinds))
    zones = {z.id: z for z in session.execute(q).all()}
    if zone_id is not None and not zones:
        raise Invalid(Issue(("query", "zone_id"), f"zone {zone_id} does not exist in venue {venue.slug!r}"))
    return zones


def _zone_out(zones: dict[int, Any], zone_id: int) -> dict[str, Any]:
    z = zones.get(zone_id)  # events outlive deleted zones: still counted, named by id
    return {"zone_id": zone_id, "name": z.name if z else f"deleted zone {zone_id}", "kind": z.kind if z else None}


def _enters(venue_id: int, w: Window, zone_ids: Sequence[int] | None) -> Any:
    q = select(Event.zone_id).where(Event.venue_id == venue_id, Event.kind == "enter", Event.zone_id.is_not(None),
                                    Event.occurred_at >= w.lo, Event.occurred_at < w.hi)
    return q.where(Event.zone_id.in_(zone_ids)) if zone_ids is not None else q


def _count_pairs(session: Session, pairs: Any) -> list[Any]:
    """Rows of the (key..., device) pairs counted per key: DISTINCT then COUNT lets PostgreSQL hash the pairs,
    where COUNT(DISTINCT) sorts every group (3x slower on a month of a busy mall)."""
    sub = pairs.distinct().subquery()
    keys = [c for c in sub.c if c.name != "device_id"]
    return list(session.execute(select(*keys, func.count()).group_by(*keys)).all())


def _uniques(session: Session, venue_id: int, w: Window, zone_ids: Sequence[int] | None) -> dict[int, int]:
    return {z: n for z, n in _count_pairs(session, _enters(venue_id, w, zone_ids).add_columns(Event.device_id))}


def _daily_uniques(session: Session, venue_id: int, w: Window, zone_ids: Sequence[int] | None,
                   wanted: set[tuple[int, datetime]]) -> dict[tuple[int, datetime], int]:
    """Distinct devices per zone per local day for the ``wanted`` (zone, local midnight) pairs (days with
    visits): from ``zone_daily``, except days the job has not seen whole, counted from the events."""
    stored = rollup.stored_days(session, venue_id=venue_id, zone_ids=zone_ids, lo=w.lo, hi=w.hi)
    dirty = {(z, _midnight(h, w)) for z, h in rollup.dirty_cells(session, dialect(session), venue_id, zone_ids,
                                                                 w.lo, w.hi)}
    found = {k: n for k, n in stored.items() if k not in dirty}
    missing = {k for k in wanted if k not in found}
    if missing:
        first, last = min(d for _, d in missing), max(d for _, d in missing)
        after = datetime.combine(last.date() + timedelta(days=1), time.min, w.tz)
        span = Window(first.astimezone(UTC), after.astimezone(UTC), w.tz)
        live = _live_daily_uniques(session, venue_id, span, sorted({z for z, _ in missing}))
        found.update({k: n for k, n in live.items() if k in missing})
    return found


def _midnight(t: datetime, w: Window) -> datetime:
    return t.astimezone(w.tz).replace(hour=0, minute=0, second=0, microsecond=0)


def _live_daily_uniques(session: Session, venue_id: int, w: Window,
                        zone_ids: Sequence[int] | None) -> dict[tuple[int, datetime], int]:
    """Distinct devices per zone per local day (keyed by the local midnight), from the events."""
    if dialect(session) == "postgresql":
        day = type_coerce(func.date_trunc("day", Event.occurred_at, literal(w.tz.key)), UTCDateTime).label("day")
        pairs = _enters(venue_id, w, zone_ids).add_columns(day, Event.device_id)
        return {(z, d.astimezone(w.tz)): n for z, d, n in _count_pairs(session, pairs)}
    seen: dict[tuple[int, datetime], set[str]] = defaultdict(set)  # SQLite knows no time zones: days here
    q = _enters(venue_id, w, zone_ids).add_columns(Event.device_id, hour_floor(Event.occurred_at, "sqlite")).distinct()
    for z, device, hour in session.execute(q).all():
        local = hour.astimezone(w.tz)
        seen[(z, local.replace(hour=0, minute=0, second=0, microsecond=0))].add(device)
    return {k: len(v) for k, v in seen.items()}


def footfall(session: Session, *, venue: Venue, w: Window, bucket: str, zone_id: int | None) -> dict[str, Any]:
    """Visits (enters) and unique shoppers (distinct devices) per zone, in total and per hour or local day."""
    zones = zones_of(session, venue=venue, zone_id=zone_id)
    ids = [zone_id] if zone_id is not None else None
    cells = rollup.hourly_cells(session, venue_id=venue.id, zone_ids=ids, lo=w.lo, hi=w.hi)
    series: dict[int, dict[datetime, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for c in cells:
        if not c.visits:
            continue
        start = c.hour if bucket == "hour" else _midnight(c.hour, w)
        point = series[c.zone_id][start]
        point[0] += c.visits
        point[1] = c.visitors  # per hour: exact; per day replaced below
    if bucket == "day":
        wanted = {(z, day) for z, points in series.items() for day in points}
        for (z, day), n in _daily_uniques(session, venue.id, w, ids, wanted).items():
            if (z, day) in wanted:
                series[z][day][1] = n
    totals = _uniques(session, venue.id, w, ids)
    out = []
    for z in sorted(set(zones) | set(series)):
        points = sorted(series[z].items()) if z in series else []
        out.append({**_zone_out(zones, z), "visits": sum(p[0] for _, p in points),
                    "unique_shoppers": totals.get(z, 0),
                    "series": [{"start": t.isoformat(), "visits": v, "unique_shoppers": u} for t, (v, u) in points]})
    out.sort(key=lambda r: (-r["visits"], r["zone_id"]))
    return {"bucket": bucket, "from": w.lo.isoformat(), "to": w.hi.isoformat(), "timezone": w.tz.key, "zones": out}


def _durations(session: Session, venue_id: int, w: Window, zone_ids: Sequence[int] | None
               ) -> dict[int, tuple[float | None, float | None]]:
    """p50 and p90 of the stays that ended in the window, per zone."""
    q = select(Event.zone_id).where(Event.venue_id == venue_id, Event.kind == "exit", Event.duration_s.is_not(None),
                                    Event.zone_id.is_not(None), Event.occurred_at >= w.lo, Event.occurred_at < w.hi)
    if zone_ids is not None:
        q = q.where(Event.zone_id.in_(zone_ids))
    if dialect(session) == "postgresql":
        q = q.add_columns(*(func.percentile_cont(qt).within_group(Event.duration_s) for qt in QUANTILES)) \
            .group_by(Event.zone_id)
        return {z: (p50, p90) for z, p50, p90 in session.execute(q).all()}
    # SQLite has no percentile_cont: rank the durations in the database and fetch only the ranks around
    # each quantile's position (a month of exits is a million rows; four per zone come back).
    ranked = q.add_columns(
        Event.duration_s.label("d"),
        func.row_number().over(partition_by=Event.zone_id, order_by=Event.duration_s).label("rn"),
        func.count().over(partition_by=Event.zone_id).label("n")).subquery()
    floors = [cast((ranked.c.n - 1) * qt, Integer) for qt in QUANTILES]  # 0-based rank, floored; rn is 1-based
    near = [ranked.c.rn.between(f, f + 2) for f in floors]
    by_zone: dict[int, dict[int, float]] = defaultdict(dict)
    counts: dict[int, int] = {}
    for z, d, rn, n in session.execute(select(ranked.c.zone_id, ranked.c.d, ranked.c.rn, ranked.c.n).where(or_(*near))):
        by_zone[z][rn - 1] = d
        counts[z] = n
    return {z: tuple(_at_rank(by_zone[z], counts[z], qt) for qt in QUANTILES) for z in by_zone}  # type: ignore[misc]


def _at_rank(values: dict[int, float], n: int, q: float) -> float:
    """``percentile`` on the ranks fetched around its position (0-based rank -> value)."""
    pos = (n - 1) * q
    low = int(pos)
    high = min(low + 1, n - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def dwell(session: Session, *, venue: Venue, w: Window, zone_id: int | None) -> dict[str, Any]:
    """How long stays lasted (exit events' durations, by the time they ended): count, mean, p50, p90, histogram."""
    zones = zones_of(session, venue=venue, zone_id=zone_id)
    ids = [zone_id] if zone_id is not None else None
    sums = rollup.zone_totals(session, venue_id=venue.id, zone_ids=ids, lo=w.lo, hi=w.hi)
    quantiles = _durations(session, venue.id, w, ids)
    edges = (0.0, *DWELL_EDGES_S, None)
    out = []
    empty = rollup.Cell(0, w.lo, 0, 0, 0, 0.0, (0,) * len(BIN_LABELS))
    for z in sorted(set(zones) | {z for z, c in sums.items() if c.stays}):
        c = sums.get(z, empty)
        p50, p90 = quantiles.get(z, (None, None))
        out.append({**_zone_out(zones, z), "count": c.stays, "mean_s": c.stay_s / c.stays if c.stays else None,
                    "p50_s": p50, "p90_s": p90,
                    "histogram": [{"bin": label, "from_s": edges[i], "to_s": edges[i + 1], "count": c.bins[i]}
                                  for i, label in enumerate(BIN_LABELS)]})
    out.sort(key=lambda r: (-r["count"], r["zone_id"]))
    return {"from": w.lo.isoformat(), "to": w.hi.isoformat(), "zones": out}


def peak_hours(session: Session, *, venue: Venue, w: Window, zone_id: int | None) -> dict[str, Any]:
    """Visits by local hour of day and weekday: of ``zone_id``, else of the venue outline zones (kind
    ``venue``: each arrival once), else of every zone."""
    zones = zones_of(session, venue=venue, zone_id=zone_id)
    if zone_id is None:
        outline = [z.id for z in zones.values() if z.kind == "venue"]
        ids: list[int] | None = outline or None
        counted = "venue outline" if outline else "every zone"
    else:
        ids, counted = [zone_id], zones[zone_id].name
    grid = [[0] * 24 for _ in WEEKDAYS]
    for c in rollup.hourly_cells(session, venue_id=venue.id, zone_ids=ids, lo=w.lo, hi=w.hi):
        local = c.hour.astimezone(w.tz)  # the hour's start decides (exact for whole-hour offsets)
        grid[local.weekday()][local.hour] += c.visits
    by_hour = [sum(day[h] for day in grid) for h in range(24)]
    busiest = max(((d, h) for d in range(7) for h in range(24)), key=lambda dh: (grid[dh[0]][dh[1]], -dh[0], -dh[1]))
    top = grid[busiest[0]][busiest[1]]
    return {"from": w.lo.isoformat(), "to": w.hi.isoformat(), "timezone": w.tz.key, "counted": counted,
            "zone_ids": sorted(ids) if ids is not None else None,
            "by_hour": [{"hour": h, "visits": by_hour[h]} for h in range(24)],
            "by_weekday": [{"weekday": WEEKDAYS[d], "visits": sum(grid[d])} for d in range(7)],
            "grid": {WEEKDAYS[d]: grid[d] for d in range(7)},
            "busiest": {"weekday": WEEKDAYS[busiest[0]], "hour": busiest[1], "visits": top} if top else None}


def transitions(session: Session, *, venue: Venue, w: Window, limit: int) -> dict[str, Any]:
    """The most common moves between two places: a device's enter into one zone of ``PATH_KINDS`` followed by
    its next enter into another such zone within ``PATH_MAX_GAP_S``."""
    zones = zones_of(session, venue=venue, zone_id=None, kinds=PATH_KINDS)
    if not zones:
        return {"from": w.lo.isoformat(), "to": w.hi.isoformat(), "kinds": list(PATH_KINDS),
                "max_gap_s": PATH_MAX_GAP_S, "transitions": []}
    order = (Event.occurred_at, Event.id)
    steps = select(
        Event.device_id, Event.zone_id.label("to_zone"), Event.occurred_at.label("at"),
        func.lag(Event.zone_id).over(partition_by=Event.device_id, order_by=order).label("from_zone"),
        func.lag(Event.occurred_at).over(partition_by=Event.device_id, order_by=order).label("prev_at"),
    ).where(Event.venue_id == venue.id, Event.kind == "enter", Event.zone_id.in_(zones),
            Event.occurred_at >= w.lo, Event.occurred_at < w.hi).subquery()
    gap = seconds_between(steps.c.at, steps.c.prev_at, dialect(session))
    n = func.count()
    q = (select(steps.c.from_zone, steps.c.to_zone, n, func.count(func.distinct(steps.c.device_id)))
         .where(steps.c.from_zone.is_not(None), steps.c.from_zone != steps.c.to_zone, gap <= PATH_MAX_GAP_S)
         .group_by(steps.c.from_zone, steps.c.to_zone)
         .order_by(n.desc(), steps.c.from_zone, steps.c.to_zone).limit(limit))
    out = [{"from_zone": _zone_out(zones, a), "to_zone": _zone_out(zones, b), "count": c, "shoppers": s}
           for a, b, c, s in session.execute(q).all()]
    return {"from": w.lo.isoformat(), "to": w.hi.isoformat(), "kinds": list(PATH_KINDS),
            "max_gap_s": PATH_MAX_GAP_S, "transitions": out}
