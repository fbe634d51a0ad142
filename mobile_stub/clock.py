"""The swarm's simulated clock and the fixes it dates."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class Clock:
    """The swarm's simulated clock: ``speedup`` times faster than wall time, never ahead of it."""

    def __init__(self, speedup: float, span_s: float):
        self.speedup = speedup
        self.wall0 = time.monotonic()
        # dating the walk back by its whole span keeps every fix in the past when it is sent
        self.epoch0 = time.time() - span_s

    def due(self, offset_s: float) -> float:
        """The monotonic wall time at which a simulated offset happens."""
        return self.wall0 + offset_s / self.speedup

    def iso(self, offset_s: float) -> str:
        """The device timestamp of a simulated offset (ISO-8601, UTC)."""
        return datetime.fromtimestamp(self.epoch0 + offset_s, UTC).isoformat(timespec="milliseconds")

    async def sleep_until(self, offset_s: float) -> None:
        """Sleep until the simulated offset is due."""
        delay = self.due(offset_s) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class Fix:
    """Something the app sends at a simulated offset from the swarm clock's start: a GPS-like fix, a
    beacon scan, or a QR code it scanned (``kind`` fix / scan / qr)."""

    t: float
    body: dict[str, Any]  # fix: id, lat, lon, accuracy_m, floor, ts; scan: id, ts, beacons; qr: payload, ts
    kind: str = "fix"

    @property
    def id(self) -> str:
        """The client id (fixes and scans; a QR scan's events name the code instead)."""
        return str(self.body.get("id") or self.body.get("payload", ""))
