"""Per-device presence: evidence per fix in, enter / exit / dwell out, without flapping.

Evidence for a zone comes from the spatial index: *inside* (deeper than the enter margin, or the
accuracy circle wholly inside), *band* (within the exit halo but not inside enough), or absent
(outside the halo). The band is the hysteresis: it neither enters nor exits, and it resets a pending
transition. Time is the device's clock (seconds since the epoch), so replayed or batched fixes give
the same events as live ones.

Rules, per zone:
- enter: inside evidence from fixes with accuracy <= max_accuracy_m, continuously for
  enter_debounce_s; the event is dated at the first inside fix.
- exit: absent evidence continuously for exit_debounce_s; dated at the first absent fix; carries the
  time spent inside.
- dwell: once per visit, on the first fix at least dwell_s after the enter.
- fixes worse than max_accuracy_m neither advance nor reset anything for that zone: a noisy fix can
  neither create a visit nor end one (a silent device is ended by ``expire``).
- a fix not newer than the last accepted one is dropped before anything else.
- ground truth (a QR code scanned, staff identifying the shopper): zones named ``certain`` are
  entered at once, whatever the debounce and accuracy; their exits still need the usual evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    DWELL = "dwell"


_ORDER = {EventKind.EXIT: 0, EventKind.ENTER: 1, EventKind.DWELL: 2}


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    enter_margin_m: float
    exit_margin_m: float
    enter_debounce_s: float
    exit_debounce_s: float
    dwell_s: float | None
    max_accuracy_m: float


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    kind: EventKind
    zone_id: int
    at: float  # device time the transition happened (first evidence), seconds since the epoch
    duration_s: float | None = None  # exit: time inside; dwell: time inside when it fired
    reason: str | None = None  # exit only: "left", "timeout", "zone_removed"


@dataclass(slots=True)
class ZonePresence:
    inside: bool
    since: float | None = None  # enter time while inside
    pending: float | None = None  # first fix of a not yet confirmed transition
    dwell_fired: bool = False


@dataclass(slots=True)
class DeviceState:
    last_ts: float | None = None
    zones: dict[int, ZonePresence] = field(default_factory=dict)
    # The level the device is on, known from a beacon fix or a QR scan, and the device time it is
    # trusted until: a GPS fix without a floor is matched on that level meanwhile.
    floor_hint: tuple[int, float] | None = None
    # The locator's memory between scans (the beacon RSSI smoother); opaque here, only cloned.
    radio: Any = None
    # Server wall time (epoch s) when last_ts was accepted: device time goes on at the server's pace, so
    # last_ts + (server now - seen_at) estimates the device's clock now (``device_now``).
    seen_at: float | None = None
    # For the spoofing checks (tracking.suspect): the last trusted fix (x, y in venue metres, ts, accuracy),
    # and where beacons or a QR code last placed the device (x, y, trusted until).
    last_xy: tuple[float, float, float, float] | None = None
    truth: tuple[float, float, float] | None = None

    def clone(self) -> DeviceState:
        return DeviceState(
            self.last_ts,
            {z: ZonePresence(p.inside, p.since, p.pending, p.dwell_fired) for z, p in self.zones.items()},
            self.floor_hint,
            self.radio.clone() if self.radio is not None else None,
            self.seen_at,
            self.last_xy,
            self.truth,
        )

    def device_now(self, server_now: float) -> float:
        """The device's clock at server time ``server_now``, as far as its fixes tell.

        For events the server dates itself (a staff scan): dating them by the server's clock would, on a
        device whose clock runs behind, make its next fixes look stale and drop them. The estimate never
        runs ahead of the device (a fix is stamped before it is sent), only behind by the network delay.
        """
        if self.last_ts is None or self.seen_at is None:
            return server_now
        return self.last_ts + max(0.0, server_now - self.seen_at)

    def floor_at(self, ts: float) -> int | None:
        """The hinted level if the hint still holds at device time ``ts``."""
        hint = self.floor_hint
        return hint[0] if hint is not None and ts <= hint[1] else None

    def inside_zones(self) -> list[int]:
        return [z for z, p in self.zones.items() if p.inside]


def observe(
    state: DeviceState,
    ts: float,
    accuracy_m: float,
    evidence: Mapping[int, bool],
    settings: Mapping[int, PresenceSettings],
    certain: frozenset[int] | set[int] = frozenset(),
) -> list[PresenceEvent] | None:
    """Apply one fix to ``state`` in place; the events it caused, or None if the fix is stale.

    ``certain``: zones the device is known to be in at ``ts`` (entered now, no debounce, any accuracy).
    """
    if (state.last_ts is not None and ts <= state.last_ts) or not math.isfinite(ts):
        return None
    state.last_ts = ts
    zones = state.zones
    if not zones and not evidence and not certain:
        return []
    events: list[PresenceEvent] = []
    for zone_id in set(zones).union(evidence, certain):
        s = settings.get(zone_id)
        p = zones.get(zone_id)
        if s is None:  # zone deleted or deactivated since the device entered it
            if p is not None and p.inside:
                events.append(_exit(zone_id, p, ts, "zone_removed"))
            zones.pop(zone_id, None)
            continue
        sure = zone_id in certain
        if accuracy_m > s.max_accuracy_m and not sure:
            if p is not None and p.inside:
                _maybe_dwell(zone_id, p, ts, s, events)
            continue
        inside = True if sure else evidence.get(zone_id)  # True inside, False band, None outside the halo
        if p is None or not p.inside:
            if inside:
                start = p.pending if p is not None and p.pending is not None else ts
                if sure or ts - start >= s.enter_debounce_s:
                    p = zones[zone_id] = ZonePresence(True, since=start)
                    events.append(PresenceEvent(EventKind.ENTER, zone_id, start))
                    _maybe_dwell(zone_id, p, ts, s, events)
                else:
                    zones[zone_id] = ZonePresence(False, pending=start)
            elif p is not None:
                del zones[zone_id]
            continue
        if inside is None:
            if p.pending is None:
                p.pending = ts
            if ts - p.pending >= s.exit_debounce_s:
                events.append(_exit(zone_id, p, p.pending, "left"))
                del zones[zone_id]
                continue
        else:
            p.pending = None
        _maybe_dwell(zone_id, p, ts, s, events)
    if len(events) > 1:
        events.sort(key=lambda e: (_ORDER[e.kind], e.at, e.zone_id))
    return events


def expire(state: DeviceState, reason: str = "timeout") -> list[PresenceEvent]:
    """End every visit of a device that went silent.

    Dated at the first outside fix when an exit was already under way, else at the last fix.
    """
    last = state.last_ts if state.last_ts is not None else 0.0
    events = [_exit(z, p, p.pending if p.pending is not None else last, reason)
              for z, p in state.zones.items() if p.inside]
    state.zones.clear()
    return events


def _exit(zone_id: int, p: ZonePresence, at: float, reason: str) -> PresenceEvent:
    since = p.since if p.since is not None else at
    return PresenceEvent(EventKind.EXIT, zone_id, at, max(0.0, at - since), reason)


def _maybe_dwell(zone_id: int, p: ZonePresence, ts: float, s: PresenceSettings, out: list[PresenceEvent]) -> None:
    # Not while an exit is under way: if it is confirmed, the visit ended before this fix.
    if s.dwell_s is None or p.dwell_fired or p.since is None or p.pending is not None:
        return
    if ts - p.since >= s.dwell_s:
        p.dwell_fired = True
        out.append(PresenceEvent(EventKind.DWELL, zone_id, ts, ts - p.since))
