"""Ingest's input checks: batch sizes, device clocks, distance from the venue, the device's location consent.

A batch that fails one is refused whole (422, or 403 for a declined consent) and changes nothing; fixes
only too old to replay are dropped and counted by the caller instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from mallfence.devices.models import Device
from mallfence.errors import Forbidden, Invalid, Issue
from mallfence.runtime import Runtime
from mallfence.tracking.schemas import FixIn
from mallfence.venues.snapshot import VenueSnapshot


def check_times(rt: Runtime, stamps: Sequence[datetime], name: str) -> list[Issue]:
    """Timestamps too far in the future: a broken device clock, and the batch is refused."""
    now = datetime.now(UTC)
    latest = now + timedelta(seconds=rt.settings.max_future_skew_s)
    return [Issue((name, i, "ts"), f"timestamp {ts.isoformat()} is {(ts - now).total_seconds():.0f} s in the "
                  "future (device clock wrong?)") for i, ts in enumerate(stamps) if ts > latest]


def too_old(rt: Runtime, stamps: Sequence[datetime]) -> set[int]:
    """Positions of timestamps older than the replay window: dropped (and counted), not refused, since an app
    replaying a long offline queue cannot do better than send it."""
    earliest = datetime.now(UTC) - timedelta(seconds=rt.settings.max_fix_age_s)
    return {i for i, ts in enumerate(stamps) if ts < earliest}


def location_consent(device: Device) -> bool | None:
    """The device's location consent: True, False (refused: no tracking at all), None (not reported yet)."""
    value = (device.consent or {}).get("location")
    return value if isinstance(value, bool) else None


def check_consent(device: Device) -> None:
    if location_consent(device) is False:
        raise Forbidden("the shopper declined location tracking on this device: positions are not accepted "
                        "(PUT .../consent when that changes)")


def check_size(rt: Runtime, count: int, name: str) -> None:
    if count > rt.settings.max_batch_fixes:
        raise Invalid(Issue((name,), f"a batch of {count} {name} is more than the limit of "
                                     f"{rt.settings.max_batch_fixes}"))


def check_batch(rt: Runtime, snapshot: VenueSnapshot, fixes: Sequence[FixIn]) -> None:
    check_size(rt, len(fixes), "fixes")
    issues = check_times(rt, [f.ts for f in fixes], "fixes")
    x, y = snapshot.index.to_local(np.array([f.lon for f in fixes]), np.array([f.lat for f in fixes]))
    limit = rt.settings.max_venue_distance_m
    for i in np.flatnonzero(np.hypot(x, y) > limit).tolist():
        d = math.hypot(x[i], y[i])
        issues.append(Issue(("fixes", i), f"fix is {d / 1000:.1f} km from venue {snapshot.slug!r} (limit "
                            f"{limit / 1000:g} km): wrong venue or lon/lat swapped?"))
    if issues:
        raise Invalid(issues)
