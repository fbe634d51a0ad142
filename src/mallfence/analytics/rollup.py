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
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, and_, case, delete, func, insert, select
from sqlalchemy.orm import Session

from mallfence.analytics.models import DWELL_BINS, DWELL_EDGES_S, RollupState, ZoneHourly
from mallfence.analytics.timesql import dialect, hour_floor
from mallfence.db import utcnow
from mallfence.tracking.models import Event

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
        select(Event.zone_id, func.min(Event.occurred_at), func.max(Event.occurred_at))
        .where(Event.id > start, Event.id <= upper, Event.kind.in_(KINDS), Event.zone_id.is_not(None))
        .group_by(Event.zone_id)).all()
    recompute(session, spans=[(zone_id, *_span(lo, hi)) for zone_id, lo, hi in touched])
    state.last_event_id, state.updated_at = upper, utcnow()
    session.flush()
    return upper - start


def position(session: Session) -> int:
    """The last event id the rollup has taken in (0: none yet)."""
    return session.scalar(select(RollupState.last_event_id).where(RollupState.name == NAME)) or 0


def hourly_cells(session: Session, *, venue_id: int, zone_ids: Sequence[int] | None, lo: datetime,
                 hi: datetime) -> list[Cell]:
    """The venue's (zone, hour) cells for the whole UTC hours in [lo, hi): from ``zone_hourly``, except cells
    that have events the job has not taken in yet, which are computed from the events now."""
    name = dialect(session)
    pos = position(session)
    fresh = select(Event.zone_id, hour_floor(Event.occurred_at, name).label("hour")).where(
        Event.id > pos, Event.venue_id == venue_id, Event.kind.in_(KINDS), Event.zone_id.is_not(None),
        Event.occurred_at >= lo, Event.occurred_at < hi).distinct()
    if zone_ids is not None:
        fresh = fresh.where(Event.zone_id.in_(zone_ids))
    dirty = {(z, h) for z, h in session.execute(fresh).all()}
    q = select(ZoneHourly).where(ZoneHourly.venue_id == venue_id, ZoneHourly.hour >= lo, ZoneHourly.hour < hi)
    if zone_ids is not None:
        q = q.where(ZoneHourly.zone_id.in_(zone_ids))
    cells = [Cell(r.zone_id, r.hour, r.visits, r.visitors, r.stays, r.stay_s,
                  tuple(getattr(r, f"dwell_{b}") for b in DWELL_BINS))
             for r in session.scalars(q) if (r.zone_id, r.hour) not in dirty]
    if dirty:  # one query over the dirty zones and hours' span, keeping only the dirty cells
        first, last = min(h for _, h in dirty), max(h for _, h in dirty)
        live = _aggregate(name).where(Event.zone_id.in_({z for z, _ in dirty}), Event.occurred_at >= first,
                                      Event.occurred_at < last + HOUR)
        cells += [Cell(r[0], r[1], int(r[3]), int(r[4]), int(r[5]), float(r[6]), tuple(int(b) for b in r[7:]))
                  for r in session.execute(live).all() if (r[0], r[1]) in dirty]
    return cells
