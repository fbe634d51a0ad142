"""Beacons that apps hear but the venue has not registered: counted per venue, never an error.

Operators use the list to find a beacon whose registration is missing, one whose battery swap gave it
a new identity, or a neighbour's beacons. Kept in process memory (per replica, since start) and bounded:
past ``MAX_PER_VENUE`` identities, the least heard half is forgotten.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from mallfence.venues.beacon_schemas import UnknownBeacon

MAX_PER_VENUE = 2_000


class UnknownBeacons:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, dict[str, list]] = {}  # venue -> key -> [count, last seen]

    def add(self, venue_id: int, keys: Iterable[str]) -> None:
        now = datetime.now(UTC)
        with self._lock:
            venue = self._seen.setdefault(venue_id, {})
            for key in keys:
                entry = venue.get(key)
                if entry is None:
                    venue[key] = [1, now]
                else:
                    entry[0] += 1
                    entry[1] = now
            if len(venue) > MAX_PER_VENUE:
                keep = sorted(venue.items(), key=lambda kv: kv[1][0], reverse=True)[:MAX_PER_VENUE // 2]
                self._seen[venue_id] = dict(keep)

    def top(self, venue_id: int, limit: int) -> list[UnknownBeacon]:
        with self._lock:
            items = sorted(self._seen.get(venue_id, {}).items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        return [UnknownBeacon(key=k, sightings=n, last_seen=at) for k, (n, at) in items]
