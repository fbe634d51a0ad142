"""The hourly rollup job: reads the event log from where it stopped and recomputes the hours it touched.

Each pass takes the events with ids past the stored position (and recorded at least ``lag_s`` ago, so a
transaction that took an id earlier has committed), finds the (zone, hour) cells they fall in, and
recomputes those cells whole from the events. Recomputing instead of adding makes late events (apps
replay fixes up to a day old), passes that crash half way and reruns all harmless, and lets ``visitors``
(distinct devices, which do not add up) stay exact per hour.

Readers never depend on the job being current: ``hourly_cells`` recomputes from the events any cell that
has events the job has not taken in yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, delete, func, insert, select
from sqlalchemy.orm import Session

from mallfence.analytics.models import DWELL_BINS, DWELL_EDGES_S, RollupState, ZoneDaily, ZoneHourly
from mallfence.analytics.timesql import dialect, hour_floor
from mallfence.db import utcnow
from mallfence.tracking.models import Event
from mallfence.venues.models import Venue

NAME = "zone_hourly"
HOUR = timedelta(hours=1)
KINDS = ("enter", "exit")


@dataclass(frozen=True, slots=True)
class Cell:
    """One zone's numbers for one UTC hour (a ``zone_hourly`` row, or the same computed live)."""

    zone_id: int
    hour: datetime
    visits: int
    visitors: int
    stays: int
    stay_s: float
    bins: tuple[int, ...]


def _aggregate(name: str) -> Select[tuple]:  # type: ignore[type-arg]
    """Per (zone, hour) aggregates over ``events``; callers add the WHERE."""
    is_enter = Event.kind == "enter"
    is_stay = and_(Event.kind == "exit", Event.duration_s.is_not(None))
    bins = []
    low: float | None = None
    for edge in (*DWELL_EDGES_S, None):
        cond = [is_stay]
        if low is not None:
            cond.append(Event.duration_s >= low)
        if edge is not None:
            cond.append(Event.duration_s < edge)
        bins.append(func.coalesce(func.sum(case((and_(*cond), 1), else_=0)), 0))
        low = edge
    hour = hour_floor(Event.occurred_at, name)
    return select(
        Event.zone_id, hour.label("hour"), func.min(Event.venue_id),
        func.coalesce(func.sum(case((is_enter, 1), else_=0)), 0),
        func.count(func.distinct(case((is_enter, Event.device_id)))),
        func.coalesce(func.sum(case((is_stay, 1), else_=0)), 0),
        func.coalesce(func.sum(case((is_stay, Event.duration_s), else_=0.0)), 0.0),
        *bins,
    ).where(Event.kind.in_(KINDS), Event.zone_id.is_not(None)).group_by(Event.zone_id, hour)


COLUMNS = ("zone_id", "hour", "venue_id", "visits", "visitors", "stays", "stay_s", *(f"dwell_{b}" for b in DWELL_BINS))


def _span(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours covering [lo, hi]."""
    start = lo.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start, hi.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + HOUR


def recompute(session: Session, *, spans: Iterable[tuple[int, datetime, datetime]]) -> int:
    """Rewrite the rows of each (zone, first hour, end hour) span from the events; rows written."""
    name, written = dialect(session), 0
    for zone_id, lo, hi in spans:
        session.execute(delete(ZoneHourly).where(ZoneHourly.zone_id == zone_id, ZoneHourly.hour >= lo,
                                                 ZoneHourly.hour < hi))
        q = _aggregate(name).where(Event.zone_id == zone_id, Event.occurred_at >= lo, Event.occurred_at < hi)
        written += session.execute(insert(ZoneHourly).from_select(COLUMNS, q)).rowcount or 0
    return written


def local_days(lo: datetime, hi: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The venue-local days holding [lo, hi], as (midnight, next midnight) UTC instants."""
    day, last = lo.astimezone(tz).date(), hi.astimezone(tz).date()
    out = []
    while day <= last:
        start = datetime.combine(day, time.min, tz).astimezone(UTC)
        day += timedelta(days=1)
        out.append((start, datetime.combine(day, time.min, tz).astimezone(UTC)))
    return out


def recompute_days(session: Session, *, zone_id: int, venue_id: int, days: Sequence[tuple[datetime, datetime]]) -> None:
    """Rewrite the zone's distinct visitors of each local day from its enter events."""
    session.execute(delete(ZoneDaily).where(ZoneDaily.zone_id == zone_id,
                                            ZoneDaily.day_start.in_([start for start, _ in days])))
    rows = []
    for start, end in days:
        n = session.scalar(select(func.count(func.distinct(Event.device_id))).where(
            Event.zone_id == zone_id, Event.kind == "enter", Event.occurred_at >= start, Event.occurred_at < end))
        if n:
            rows.append({"zone_id": zone_id, "day_start": start, "venue_id": venue_id, "visitors": n})
    if rows:
        session.execute(insert(ZoneDaily), rows)


def stored_days(session: Session, *, venue_id: int, zone_ids: Sequence[int] | None, lo: datetime,
                hi: datetime) -> dict[tuple[int, datetime], int]:
    """Distinct visitors per (zone, local midnight) as the job stored them, for days starting in [lo, hi)."""
    q = select(ZoneDaily.zone_id, ZoneDaily.day_start, ZoneDaily.visitors).where(
        ZoneDaily.venue_id == venue_id, ZoneDaily.day_start >= lo, ZoneDaily.day_start < hi)
    if zone_ids is not None:
        q = q.where(ZoneDaily.zone_id.in_(zone_ids))
    return {(z, d): n for z, d, n in session.execute(q).all()}


def roll_up(session: Session, *, lag_s: float = 30.0, max_events: int = 1_000_000,
            now: datetime | None = None) -> int:
    """One pass of the job: take in up to ``max_events`` new events; how many ids it moved past."""
    state = session.get(RollupState, NAME, with_for_update=True)
    if state is None:
        state = RollupState(name=NAME, last_event_id=0)
        session.add(state)
        session.flush()
    start = state.last_event_id
    cutoff = (now or utcnow()) - timedelta(seconds=lag_s)
    upper = session.scalar(select(func.max(Event.id)).where(
        Event.id > start, Event.id <= start + max_events, Event.recorded_at <= cutoff))
    if upper is None:
        return 0
    touched = session.execute(
        select(Event.zone_id, func.min(Event.venue_id), func.min(Event.occurred_at), func.max(Event.occurred_at))
        .where(Event.id > start, Event.id <= upper, Event.kind.in_(KINDS), Event.zone_id.is_not(None))
        .group_by(Event.zone_id)).all()
    recompute(session, spans=[(zone_id, *_span(lo, hi)) for zone_id, _, lo, hi in touched])
    zones = {venue_id: ZoneInfo(tz) for venue_id, tz in session.execute(
        select(Venue.id, Venue.timezone).where(Venue.id.in_({v for _, v, _, _ in touched})))}
    for zone_id, venue_id, lo, hi in touched:
        if venue_id in zones:  # a deleted venue's events go with it
            recompute_days(session, zone_id=zone_id, venue_id=venue_id, days=local_days(lo, hi, zones[venue_id]))
    state.last_event_id, state.updated_at = upper, utcnow()
    session.flush()
    return upper - start


def position(session: Session) -> int:
    """The last event id the rollup has taken in (0: none yet)."""
    return session.scalar(select(RollupState.last_event_id).where(RollupState.name == NAME)) or 0


_SUMS = (ZoneHourly.visits, ZoneHourly.visitors, ZoneHourly.stays, ZoneHourly.stay_s,
         *(getattr(ZoneHourly, f"dwell_{b}") for b in DWELL_BINS))


def _cell(zone_id: int, hour: datetime, row: Sequence[Any]) -> Cell:
    return Cell(zone_id, hour, int(row[0]), int(row[1]), int(row[2]), float(row[3]), tuple(int(b) for b in row[4:]))


def dirty_cells(session: Session, name: str, venue_id: int, zone_ids: Sequence[int] | None, lo: datetime,
           hi: datetime) -> set[tuple[int, datetime]]:
    """(zone, hour) cells in [lo, hi) holding events the job has not taken in yet."""
    q = select(Event.zone_id, hour_floor(Event.occurred_at, name).label("hour")).where(
        Event.id > position(session), Event.venue_id == venue_id, Event.kind.in_(KINDS),
        Event.zone_id.is_not(None), Event.occurred_at >= lo, Event.occurred_at < hi).distinct()
    if zone_ids is not None:
        q = q.where(Event.zone_id.in_(zone_ids))
    return {(z, h) for z, h in session.execute(q).all()}


def _live(session: Session, name: str, dirty: set[tuple[int, datetime]]) -> list[Cell]:
    """The dirty cells computed from the events: one query over their zones and span."""
    if not dirty:
        return []
    first, last = min(h for _, h in dirty), max(h for _, h in dirty)
    q = _aggregate(name).where(Event.zone_id.in_({z for z, _ in dirty}), Event.occurred_at >= first,
                               Event.occurred_at < last + HOUR)
    return [_cell(r[0], r[1], r[3:]) for r in session.execute(q).all() if (r[0], r[1]) in dirty]


def _stored(zone_ids: Sequence[int] | None, venue_id: int, lo: datetime, hi: datetime, *cols: Any) -> Select[Any]:
    q = select(*cols).where(ZoneHourly.venue_id == venue_id, ZoneHourly.hour >= lo, ZoneHourly.hour < hi)
    return q.where(ZoneHourly.zone_id.in_(zone_ids)) if zone_ids is not None else q


def hourly_cells(session: Session, *, venue_id: int, zone_ids: Sequence[int] | None, lo: datetime,
                 hi: datetime) -> list[Cell]:
    """The venue's (zone, hour) cells for the whole UTC hours in [lo, hi): from ``zone_hourly``, except cells
    that have events the job has not taken in yet, which are computed from the events now."""
    name = dialect(session)
    dirty = dirty_cells(session, name, venue_id, zone_ids, lo, hi)
    rows = session.execute(_stored(zone_ids, venue_id, lo, hi, ZoneHourly.zone_id, ZoneHourly.hour, *_SUMS)).all()
    cells = [_cell(r[0], r[1], r[2:]) for r in rows if (r[0], r[1]) not in dirty]
    return cells + _live(session, name, dirty)


def zone_totals(session: Session, *, venue_id: int, zone_ids: Sequence[int] | None, lo: datetime,
                hi: datetime) -> dict[int, Cell]:
    """Per zone, the sums of its cells in [lo, hi) (``visitors`` summed too: an upper bound, not distinct):
    added up by the database, with dirty cells swapped for their live values."""
    name = dialect(session)
    dirty = dirty_cells(session, name, venue_id, zone_ids, lo, hi)
    q = _stored(zone_ids, venue_id, lo, hi, ZoneHourly.zone_id, *(func.sum(c) for c in _SUMS)) \
        .group_by(ZoneHourly.zone_id)
    sums = {r[0]: list(r[1:]) for r in session.execute(q).all()}
    if dirty:
        first, last = min(h for _, h in dirty), max(h for _, h in dirty)
        stale = _stored(zone_ids, venue_id, first, last + HOUR, ZoneHourly.zone_id, ZoneHourly.hour, *_SUMS)
        for r in session.execute(stale).all():
            if (r[0], r[1]) in dirty:
                sums[r[0]] = [a - b for a, b in zip(sums[r[0]], r[2:], strict=True)]
        for c in _live(session, name, dirty):
            acc = sums.setdefault(c.zone_id, [0] * len(_SUMS))
            sums[c.zone_id] = [a + b for a, b in zip(acc, (c.visits, c.visitors, c.stays, c.stay_s, *c.bins),
                                                     strict=True)]
    return {z: _cell(z, lo, v) for z, v in sums.items()}
