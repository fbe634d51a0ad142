"""Token buckets: how often one device, one key, one address may call, in this process.

A bucket refills at ``rate`` per second up to ``burst``; a call takes one token or is refused with the
seconds until one is there (HTTP 429, Retry-After). Buckets live in process memory: with several replicas
each enforces its own share, so a client spread over N replicas may reach N times the rate (route a device
to one replica, or lower the limits, where that matters). Idle buckets are dropped past ``max_keys``.
"""

from __future__ import annotations

import math
import threading
import time

from mallfence import metrics
from mallfence.errors import DomainError


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.retry_after_s))


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: float, *, max_keys: int = 200_000, kind: str = "other"):
        if not (rate_per_s > 0 and burst >= 1):
            raise ValueError("a rate limit needs rate_per_s > 0 and burst >= 1")
        self.rate, self.burst, self.max_keys = rate_per_s, burst, max_keys
        self._refused = metrics.RATE_LIMITED.labels(kind)  # kind: device, operator, public (a bounded set)
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill (monotonic)]
        self._lock = threading.Lock()

    def wait_s(self, key: str, cost: float = 1.0) -> float:
        """0 when the call may go now (a token is taken), else the seconds until it could."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._evict(now)
                bucket = self._buckets[key] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= cost:
                bucket[0] = tokens - cost
                return 0.0
            bucket[0] = tokens
        self._refused.inc()
        return (cost - tokens) / self.rate

    def take(self, key: str, what: str, cost: float = 1.0) -> None:
        """Take a token or raise TooManyRequests naming ``what`` is limited."""
        wait = self.wait_s(key, cost)
        if wait > 0:
            raise TooManyRequests(f"too many requests from this {what}: retry in {math.ceil(wait)} s", wait)

    def _evict(self, now: float) -> None:
        # Full buckets (idle long enough to refill) carry no state worth keeping; else drop the oldest half.
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for key in full or sorted(self._buckets, key=lambda k: self._buckets[k][1])[: len(self._buckets) // 2]:
            del self._buckets[key]
