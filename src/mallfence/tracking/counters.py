"""Per-venue counters of what ingest refused, dropped or flagged (this process, since it started).

They answer "is someone spoofing here?" and "are apps replaying stale queues?" without a log search; the
same numbers go to /metrics.
"""

from __future__ import annotations

import threading
from collections import Counter

from mallfence import metrics


class VenueCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_venue: dict[int, Counter[str]] = {}

    def add(self, venue_id: int, name: str, n: int = 1) -> None:
        if n:
            metrics.ingest_counter(name, n)
            with self._lock:
                self._by_venue.setdefault(venue_id, Counter())[name] += n

    def of(self, venue_id: int) -> dict[str, int]:
        with self._lock:
            return dict(self._by_venue.get(venue_id, Counter()))

    def all(self) -> dict[int, dict[str, int]]:
        with self._lock:
            return {v: dict(c) for v, c in self._by_venue.items()}
