"""Fixes in, events out: validate, order, match, run presence, store events, publish.

Presence state changes only after the events it produced are committed: if the database refuses the
batch, the device's state is as if the batch never came, and a retry gives the same events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallfence.db import transaction
from mallfence.delivery import webhooks
from mallfence.devices.models import Device
from mallfence.errors import Invalid, Issue
from mallfence.presence.machine import PresenceEvent, expire, observe
from mallfence.runtime import Runtime
from mallfence.tracking.models import Event
from mallfence.tracking.schemas import Dropped, EventOut, FixIn, IngestOut, ZoneRef
from mallfence.venues.models import Level, Zone
from mallfence.venues.snapshot import VenueSnapshot

LAST_SEEN_EVERY_S = 60.0  # devices.last_seen_at is for retention and reports: minute precision is plenty


def _check_batch(rt: Runtime, snapshot: VenueSnapshot, fixes: Sequence[FixIn]) -> None:
    limits = rt.settings
    if len(fixes) > limits.max_batch_fixes:
        raise Invalid(Issue(("fixes",), f"a batch of {len(fixes)} fixes is more than the limit of "
                            f"{limits.max_batch_fixes}"))
    now = datetime.now(UTC)
    latest = now + timedelta(seconds=limits.max_future_skew_s)
    earliest = now - timedelta(seconds=limits.max_fix_age_s)
    issues = []
    for i, fix in enumerate(fixes):
        if fix.ts > latest:
            issues.append(Issue(("fixes", i, "ts"), f"timestamp {fix.ts.isoformat()} is "
                                f"{(fix.ts - now).total_seconds():.0f} s in the future (device clock wrong?)"))
        elif fix.ts < earliest:
            issues.append(Issue(("fixes", i, "ts"), f"timestamp {fix.ts.isoformat()} is older than the "
                                f"{limits.max_fix_age_s / 3600:g} h limit for replayed fixes"))
    x, y = snapshot.index.to_local(np.array([f.lon for f in fixes]), np.array([f.lat for f in fixes]))
    for i in np.flatnonzero(np.hypot(x, y) > limits.max_venue_distance_m).tolist():
        d = math.hypot(x[i], y[i])
        issues.append(Issue(("fixes", i), f"fix is {d / 1000:.1f} km from venue {snapshot.slug!r} (limit "
                            f"{limits.max_venue_distance_m / 1000:g} km): wrong venue or lon/lat swapped?"))
    if issues:
        raise Invalid(issues)


def _snapshot(rt: Runtime, venue_id: int) -> VenueSnapshot:
    snapshot = rt.snapshots.get(venue_id)
    if snapshot is None:
        rt.snapshots.rebuild(venue_id)
        snapshot = rt.snapshots.get(venue_id)
    assert snapshot is not None, "device of a deleted venue"
    return snapshot


def _event_row(device: Device, e: PresenceEvent, fix: FixIn | None, source: str) -> Event:
    return Event(
        venue_id=device.venue_id, device_id=device.id, zone_id=e.zone_id, kind=e.kind.value,
        occurred_at=datetime.fromtimestamp(e.at, UTC), duration_s=e.duration_s, reason=e.reason, source=source,
        fix_id=fix.id if fix else None, lon=fix.lon if fix else None, lat=fix.lat if fix else None,
        accuracy_m=fix.accuracy_m if fix else None, floor=fix.floor if fix else None,
    )


def _event_out(row: Event, snapshot: VenueSnapshot) -> EventOut:
    info = snapshot.zones.get(row.zone_id)
    zone = ZoneRef(**info.as_dict()) if info else ZoneRef(id=row.zone_id)
    return EventOut(id=row.id, kind=row.kind, zone=zone, at=row.occurred_at, duration_s=row.duration_s,
                    reason=row.reason, fix_id=row.fix_id, source=row.source)


def ingest(rt: Runtime, *, device: Device, fixes: Sequence[FixIn], source: str = "gps") -> IngestOut:
    """Apply a batch of fixes from one device; all its events are stored or none are."""
    snapshot = _snapshot(rt, device.venue_id)
    _check_batch(rt, snapshot, fixes)
    order = sorted(range(len(fixes)), key=lambda i: fixes[i].ts)
    ordered = [fixes[i] for i in order]
    hits = snapshot.index.evidence(
        np.array([f.lon for f in ordered]), np.array([f.lat for f in ordered]),
        np.array([np.nan if f.floor is None else f.floor for f in ordered]),
        np.array([f.accuracy_m for f in ordered]),
    )
    points, zones, inside = hits.point.tolist(), hits.zone.tolist(), hits.inside.tolist()  # type: ignore[union-attr]
    dropped: list[Dropped] = []
    produced: list[tuple[PresenceEvent, FixIn]] = []
    with rt.states.locked(device.id):
        state = rt.states.get(device.id)
        j = 0
        for k, fix in enumerate(ordered):
            evidence: dict[int, bool] = {}
            while j < len(points) and points[j] == k:
                evidence[zones[j]] = inside[j]
                j += 1
            events = observe(state, fix.ts.timestamp(), fix.accuracy_m, evidence, snapshot.settings)
            if events is None:
                dropped.append(Dropped(index=order[k], reason="stale"))
            else:
                produced.extend((e, fix) for e in events)
        out: list[EventOut] = []
        hooked = 0
        # Most fixes change nothing: no transaction (and no fsync) for them.
        if produced or rt.states.due_touch(device.id, LAST_SEEN_EVERY_S):
            with transaction(rt.sessions) as session:
                rows = [_event_row(device, e, fix, source) for e, fix in produced]
                session.add_all(rows)
                session.execute(update(Device).where(Device.id == device.id)
                                .values(last_seen_at=datetime.now(UTC)))
                session.flush()
                out = [_event_out(row, snapshot) for row in rows]
                # webhooks hook: deliveries commit (or roll back) with their events
                hooked = webhooks.enqueue_events(session, venue_id=device.venue_id, venue=snapshot.slug,
                                                 device_id=device.id, events=out)
        rt.states.put(device.id, state)
    if hooked:  # webhooks hook
        webhooks.wake_dispatchers()
    publish(rt, device.id, out)
    dropped.sort(key=lambda d: d.index)
    return IngestOut(accepted=len(fixes) - len(dropped), dropped=dropped, events=out)


def publish(rt: Runtime, device_id: str, events: list[EventOut]) -> None:
    rt.hub.publish(device_id, [{"type": "event", **e.model_dump(mode="json")} for e in events])


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
                snapshot = _snapshot(rt, device.venue_id)
                rows = [_event_row(device, e, None, "server") for e in events]
                session.add_all(rows)
                session.flush()
                out = [_event_out(row, snapshot) for row in rows]
                # webhooks hook: deliveries commit (or roll back) with their events
                hooked = webhooks.enqueue_events(session, venue_id=device.venue_id, venue=snapshot.slug,
                                                 device_id=device.id, events=out)
            rt.states.put(device_id, state)
        if hooked:  # webhooks hook
            webhooks.wake_dispatchers()
        publish(rt, device_id, out)
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
               if zone is not None else ZoneRef(id=ev.zone_id))
        out.append(EventOut(id=ev.id, kind=ev.kind, zone=ref, at=ev.occurred_at, duration_s=ev.duration_s,
                            reason=ev.reason, fix_id=ev.fix_id, source=ev.source))
    return out
