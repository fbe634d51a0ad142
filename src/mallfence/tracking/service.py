"""Fixes in, events out: validate, order, match, run presence, store events, publish.

Three sources feed the same presence engine: GPS-like fixes (``ingest``; in groups: tracking/group.py),
beacon scans turned into fixes (tracking/beacon_ingest.py), and ground truth, a QR code scanned or staff
identifying the shopper (``pin``), which enters its zone at once.

Presence state changes only after the events it produced are committed: if the database refuses the
batch, the device's state is as if the batch never came, and a retry gives the same events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallfence import metrics
from mallfence.db import transaction
from mallfence.devices.models import Device
from mallfence.presence.machine import DeviceState, PresenceEvent, expire, observe
from mallfence.runtime import Runtime
from mallfence.tracking import checks, live, suspect
from mallfence.tracking.listeners import EventBatch, run_after_commit
from mallfence.tracking.models import Event
from mallfence.tracking.schemas import (
    Dropped,
    EventOut,
    FixIn,
    IngestOut,
    ZoneRef,
)
from mallfence.venues.models import Level, Zone
from mallfence.venues.snapshot import VenueSnapshot

LAST_SEEN_EVERY_S = 60.0  # devices.last_seen_at is for retention and reports: minute precision is plenty
GROUND_TRUTH_ACCURACY_M = 1.0  # a scanned QR code or a staff scan: the device is within arm's length
EPSILON_S = 0.001
QR_TRUTH_S = 60.0  # how long a scan is the truth GPS fixes are measured by


def snapshot_of(rt: Runtime, venue_id: int) -> VenueSnapshot:
    snapshot = rt.snapshots.get(venue_id)
    if snapshot is None:
        rt.snapshots.rebuild(venue_id)
        snapshot = rt.snapshots.get(venue_id)
    assert snapshot is not None, "device of a deleted venue"
    return snapshot


# -- the shared path: evidence -> presence -> one transaction -> publish -------------------------------------
@dataclass(slots=True)
class _Produced:
    event: PresenceEvent
    fix: FixIn | None
    source: str
    flags: list[str] | None = None


@dataclass(slots=True)
class Evidence:
    """Where a batch's fixes are (local metres) and which zones' halos hold them: (fix position, zone, inside)."""

    xs: list[float]
    ys: list[float]
    points: list[int]
    zones: list[int]
    inside: list[bool]


def evidence_of(snapshot: VenueSnapshot, batches: Sequence[tuple[DeviceState, Sequence[FixIn]]]) -> list[Evidence]:
    """The zone evidence of several batches (fixes in time order, each with its device's state) in one
    index query: a group of single-fix websocket messages costs one vectorised call, not one per fix."""
    fixes = [f for _, ordered in batches for f in ordered]
    t0 = time.perf_counter()
    xs, ys = snapshot.index.to_local(np.array([f.lon for f in fixes]), np.array([f.lat for f in fixes]))
    # A fix without a floor is matched on the level a recent beacon fix or QR scan put the device on.
    floors = [f.floor if f.floor is not None else state.floor_at(f.ts.timestamp())
              for state, ordered in batches for f in ordered]
    hits = snapshot.index.evidence_local(xs, ys, np.array([np.nan if fl is None else fl for fl in floors], dtype=float),
                                         np.array([f.accuracy_m for f in fixes]))
    points, zones, inside = hits.point.tolist(), hits.zone.tolist(), hits.inside.tolist()  # type: ignore[union-attr]
    x, y = xs.tolist(), ys.tolist()
    out, start, j = [], 0, 0
    for _, ordered in batches:
        end, j0 = start + len(ordered), j
        while j < len(points) and points[j] < end:
            j += 1
        out.append(Evidence(x[start:end], y[start:end], [p - start for p in points[j0:j]], zones[j0:j], inside[j0:j]))
        start = end
    metrics.observe("match", time.perf_counter() - t0)
    return out


def _observe(snapshot: VenueSnapshot, state: DeviceState, ordered: Sequence[FixIn], source: str,
             certain: frozenset[int] = frozenset(), checks: suspect.Checks = suspect.Checks(),
             counters: Callable[[str], None] | None = None, found: Evidence | None = None,
             ) -> tuple[list[_Produced], list[int]]:
    """Run fixes (in time order) through the spoofing checks and presence; (events, positions of stale fixes).
    ``found``: their evidence, when the caller queried it with other batches' (``evidence_of``)."""
    if not ordered:
        return [], []
    metrics.FIXES.labels(source).inc(len(ordered))
    ev = found if found is not None else evidence_of(snapshot, [(state, ordered)])[0]
    xs, ys, points, zones, inside = ev.xs, ev.ys, ev.points, ev.zones, ev.inside
    t1 = time.perf_counter()
    produced: list[_Produced] = []
    stale: list[int] = []
    j = 0
    for k, fix in enumerate(ordered):
        evidence: dict[int, bool] = {}
        while j < len(points) and points[j] == k:
            evidence[zones[j]] = inside[j]
            j += 1
        sure = certain | {z for z, i in evidence.items() if i} if certain else certain
        ts = fix.ts.timestamp()
        events = observe(state, ts, fix.accuracy_m, evidence, snapshot.settings, sure)
        if events is None:
            stale.append(k)
            continue
        x, y = xs[k], ys[k]
        found = suspect.flags(x=x, y=y, ts=ts, accuracy_m=fix.accuracy_m, source=source,
                              mocked=getattr(fix, "mocked", None), last=state.last_xy, truth=state.truth,
                              checks=checks) if not certain else []
        if found:
            for flag in found:
                if counters is not None:
                    counters(f"fixes_flagged_{flag}")
        else:
            state.last_xy = (x, y, ts, fix.accuracy_m)
        produced.extend(_Produced(e, fix, source, found or None) for e in events)
    metrics.observe("presence", time.perf_counter() - t1)
    if stale:
        metrics.DROPPED.labels("stale").inc(len(stale))
    return produced, stale


def _event_row(device: Device, e: PresenceEvent, fix: FixIn | None, source: str,
               flags: list[str] | None = None) -> Event:
    # The position behind an event is kept only with the shopper's location consent (privacy: the event
    # itself, "entered the food court", is what the product needs).
    where = fix if fix is not None and checks.location_consent(device) is True else None
    return Event(
        venue_id=device.venue_id, device_id=device.id, zone_id=e.zone_id, kind=e.kind.value,
        occurred_at=datetime.fromtimestamp(e.at, UTC), duration_s=e.duration_s, reason=e.reason, source=source,
        fix_id=fix.id if fix else None, lon=where.lon if where else None, lat=where.lat if where else None,
        accuracy_m=where.accuracy_m if where else None, floor=fix.floor if fix else None, flags=flags,
    )


def _event_out(row: Event, snapshot: VenueSnapshot) -> EventOut:
    zone = None
    if row.zone_id is not None:
        info = snapshot.zones.get(row.zone_id)
        zone = ZoneRef(**info.as_dict()) if info else ZoneRef(id=row.zone_id)
    return EventOut(id=row.id, kind=row.kind, zone=zone, at=row.occurred_at, duration_s=row.duration_s,  # type: ignore[arg-type]
                    reason=row.reason, fix_id=row.fix_id, source=row.source, data=row.data, flags=row.flags)


def store(rt: Runtime, device: Device, snapshot: VenueSnapshot, produced: Sequence[_Produced],
          first: Sequence[Event] = ()) -> tuple[list[EventOut], EventBatch | None]:
    """Commit ``first`` (scan events) and the presence events in one transaction, with what the listeners
    (webhooks, engagement, commerce) write for them; (events out, the batch for its after-commit work)."""
    return store_many(rt, [Stored(device, snapshot, produced, first)])[0]


@dataclass(slots=True)
class Stored:
    device: Device
    snapshot: VenueSnapshot
    produced: Sequence[_Produced]
    first: Sequence[Event] = ()


def store_many(rt: Runtime, items: Sequence[Stored]) -> list[tuple[list[EventOut], EventBatch | None]]:
    """``store`` for several devices' batches in one transaction: all commit or none do."""
    # Most fixes change nothing: no transaction (and no fsync) for them.
    need = [bool(i.produced or i.first) or rt.states.due_touch(i.device.id, LAST_SEEN_EVERY_S) for i in items]
    results: list[tuple[list[EventOut], EventBatch | None]] = [([], None)] * len(items)
    if not any(need):
        return results
    with metrics.timed("store"), transaction(rt.sessions) as session:
        rows = {k: [*i.first, *(_event_row(i.device, p.event, p.fix, p.source, p.flags) for p in i.produced)]
                for k, i in enumerate(items) if need[k]}
        for some in rows.values():
            session.add_all(some)
        seen = sorted({items[k].device.id for k in rows})
        session.execute(update(Device).where(Device.id.in_(seen)).values(last_seen_at=datetime.now(UTC)))
        session.flush()
        for k, some in rows.items():
            i = items[k]
            out = [_event_out(row, i.snapshot) for row in some]
            where = {row.id: (p.fix.lon, p.fix.lat, p.fix.floor)
                     for row, p in zip(some[len(i.first):], i.produced, strict=True) if p.fix is not None}
            results[k] = (out, _listen(session, rt, i.device, i.snapshot, out, where))
    return results


def _listen(session: Session, rt: Runtime, device: Device, snapshot: VenueSnapshot,
            out: list[EventOut], positions: dict[int, tuple[float, float, int | None]] | None = None,
            ) -> EventBatch | None:
    if not out:
        return None
    batch = EventBatch(session, rt, device, snapshot, out, positions=positions or {})
    for listener in rt.listeners:
        listener(batch)
    return batch


def _finish(rt: Runtime, device_id: str, out: list[EventOut], batch: EventBatch | None) -> None:
    """After the commit: the listeners' follow-up work, then the events to the device's sockets."""
    if batch is not None:
        run_after_commit(batch)
    for e in out:
        metrics.EVENTS.labels(e.kind).inc()
    publish(rt, device_id, out)


def publish(rt: Runtime, device_id: str, events: list[EventOut]) -> None:
    rt.hub.publish(device_id, [{"type": "event", **e.model_dump(mode="json")} for e in events])


# -- GPS-like fixes ----------------------------------------------------------------------------------------
def _checks(rt: Runtime) -> suspect.Checks:
    return suspect.Checks(max_speed_m_s=rt.settings.max_speed_m_s, truth_radius_m=rt.settings.spoof_truth_radius_m)


def _counter(rt: Runtime, venue_id: int) -> Callable[[str], None]:
    return lambda name: rt.counters.add(venue_id, name)


@dataclass(slots=True)
class Checked:
    """A batch of fixes that passed the input checks: what remains to apply, in time order."""

    device: Device
    snapshot: VenueSnapshot
    fixes: Sequence[FixIn]
    old: set[int]  # positions too old to replay: dropped
    order: list[int]  # the other positions, by timestamp
    source: str = "gps"

    def ordered(self) -> list[FixIn]:
        return [self.fixes[i] for i in self.order]


def check(rt: Runtime, device: Device, fixes: Sequence[FixIn], source: str = "gps") -> Checked:
    """The input checks of ``ingest``; raises ``Invalid`` / ``Forbidden`` for a batch refused whole."""
    with metrics.timed("validate"):
        checks.check_consent(device)
        snapshot = snapshot_of(rt, device.venue_id)
        checks.check_batch(rt, snapshot, fixes)
        old = checks.too_old(rt, [f.ts for f in fixes])
    rt.counters.add(device.venue_id, "fixes_too_old", len(old))
    order = sorted((i for i in range(len(fixes)) if i not in old), key=lambda i: fixes[i].ts)
    return Checked(device, snapshot, fixes, old, order, source)


def apply(rt: Runtime, c: Checked, state: DeviceState, found: Evidence | None = None
          ) -> tuple[list[_Produced], list[int]]:
    """Presence for a checked batch on the device's state (held under its lock); (events, stale positions)."""
    before = state.last_ts
    produced, stale = _observe(c.snapshot, state, c.ordered(), c.source, checks=_checks(rt),
                               counters=_counter(rt, c.device.venue_id), found=found)
    _seen(state, before)
    return produced, stale


def settle(rt: Runtime, c: Checked, stale: list[int], out: list[EventOut], batch: EventBatch | None) -> IngestOut:
    """After the commit: follow-up work, the events to the device's sockets and the live map; the receipt."""
    _finish(rt, c.device.id, out, batch)
    live.publish(rt, venue_id=c.device.venue_id, device_id=c.device.id,
                 fix=c.fixes[c.order[-1]] if c.order else None, source=c.source, events=out)
    dropped = sorted([*(Dropped(index=c.order[k], reason="stale") for k in stale),
                      *(Dropped(index=i, reason="too_old") for i in c.old)], key=lambda d: d.index)
    return IngestOut(accepted=len(c.fixes) - len(dropped), dropped=dropped, events=out)


def ingest(rt: Runtime, *, device: Device, fixes: Sequence[FixIn], source: str = "gps") -> IngestOut:
    """Apply a batch of fixes from one device; all its events are stored or none are."""
    c = check(rt, device, fixes, source)
    with rt.states.locked(device.id):
        state = rt.states.get(device.id)
        produced, stale = apply(rt, c, state)
        out, batch = store(rt, device, c.snapshot, produced)
        rt.states.put(device.id, state)
    return settle(rt, c, stale, out, batch)


# -- ground truth: QR codes, staff scans ------------------------------------------------------------------
def _seen(state: DeviceState, before: float | None) -> None:
    if state.last_ts != before:
        state.seen_at = time.time()


def pin(rt: Runtime, *, device: Device, zone_id: int | None, point: tuple[float, float] | None,
        level: int | None, at: datetime | None, source: str, scan: Event, floor_hint_s: float) -> list[EventOut]:
    """The device is at ``point`` (lon, lat) on ``level``, inside ``zone_id``, now: store ``scan`` (its
    event) and enter that zone, and every zone the point is deep inside, at once.

    ``at`` is the device's time of the scan; None (staff scans, apps that send none) means the device's
    clock now as estimated from its fixes. Presence cannot go back in time: a scan dated before the
    device's last fix counts as just after it.
    """
    snapshot = snapshot_of(rt, device.venue_id)
    with rt.states.locked(device.id):
        state = rt.states.get(device.id)
        ts = at.timestamp() if at is not None else state.device_now(time.time())
        if state.last_ts is not None and ts <= state.last_ts:
            ts = state.last_ts + EPSILON_S
        when = datetime.fromtimestamp(ts, UTC)
        certain = frozenset({zone_id}) if zone_id is not None else frozenset()
        if point is not None:
            fix = FixIn.model_construct(id=scan.fix_id, lat=point[1], lon=point[0], accuracy_m=GROUND_TRUTH_ACCURACY_M,
                                        floor=level, ts=when)
            produced, _ = _observe(snapshot, state, [fix], source, certain)
        else:  # a zone without geometry to point at (or none): only the zone itself is known
            events = observe(state, ts, GROUND_TRUTH_ACCURACY_M, {}, snapshot.settings, certain) or []
            produced = [_Produced(e, None, source) for e in events]
        if level is not None:
            state.floor_hint = (level, ts + floor_hint_s)
        if point is not None:  # the spoofing checks measure later fixes against this spot
            x, y = snapshot.index.to_local(np.array([point[0]]), np.array([point[1]]))
            state.truth = (float(x[0]), float(y[0]), ts + QR_TRUTH_S)
            state.last_xy = (float(x[0]), float(y[0]), ts, GROUND_TRUTH_ACCURACY_M)
        state.seen_at = time.time()
        scan.occurred_at = when
        out, batch = store(rt, device, snapshot, produced, [scan])
        rt.states.put(device.id, state)
    _finish(rt, device.id, out, batch)
    live.publish(rt, venue_id=device.venue_id, device_id=device.id, fix=None, source=source, events=out)
    return out


# -- silence -----------------------------------------------------------------------------------------------
def expire_silent(rt: Runtime) -> int:
    """Close the open visits of devices that stopped reporting; returns how many events that made."""
    count = 0
    for device_id in rt.states.silent_since(rt.settings.presence_timeout_s):
        with rt.states.locked(device_id):
            state = rt.states.get(device_id)
            events = expire(state, "timeout")
            if not events:  # only transitions that never confirmed: drop them so the sweep stops looking
                rt.states.put(device_id, state)
                continue
            with transaction(rt.sessions) as session:
                device = session.get(Device, device_id)
                if device is None:
                    rt.states.forget(device_id)
                    continue
                snapshot = snapshot_of(rt, device.venue_id)
                rows = [_event_row(device, e, None, "server") for e in events]
                session.add_all(rows)
                session.flush()
                out = [_event_out(row, snapshot) for row in rows]
                batch = _listen(session, rt, device, snapshot, out)
            rt.states.put(device_id, state)
        _finish(rt, device_id, out, batch)
        live.publish(rt, venue_id=device.venue_id, device_id=device_id, fix=None, source="server", events=out)
        count += len(out)
    return count


def list_events(session: Session, *, device: Device, after_id: int = 0, limit: int = 100) -> list[EventOut]:
    """The device's events with id > after_id, oldest first (zones described as they are now)."""
    rows = session.execute(
        select(Event, Zone, Level.ordinal)
        .outerjoin(Zone, Zone.id == Event.zone_id)
        .outerjoin(Level, Level.id == Zone.level_id)
        .where(Event.device_id == device.id, Event.id > after_id)
        .order_by(Event.id)
        .limit(limit)
    ).all()
    out = []
    for ev, zone, ordinal in rows:
        ref = (ZoneRef(id=zone.id, external_id=zone.external_id, name=zone.name, kind=zone.kind, level=ordinal)
               if zone is not None else ZoneRef(id=ev.zone_id) if ev.zone_id is not None else None)
        out.append(EventOut(id=ev.id, kind=ev.kind, zone=ref, at=ev.occurred_at, duration_s=ev.duration_s,
                            reason=ev.reason, fix_id=ev.fix_id, source=ev.source, data=ev.data))
    return out
