"""What Redis costs per fix: ``python -m tests.replicas.overhead [redis_url]`` (a measurement, not a test).

1. the store calls one ingest makes (lock, get, due_touch, put, unlock) for a device inside two zones;
2. ``POST /v1/devices/{id}/positions`` with one fix through the whole app (SQLite, TestClient), the
   steady case where the fix changes presence state but makes no event.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import shapely
from fastapi.testclient import TestClient

from mallfence.config import Settings
from mallfence.main import create_app
from mallfence.presence.machine import DeviceState, ZonePresence
from mallfence.presence.redis_store import RedisStateStore, connect
from mallfence.presence.store import InMemoryStateStore
from tests.auth import bearer, operator_key
from tests.factories import create_venue, create_zone, fix, register
from tests.replicas.cluster import drop_prefix


def _per_call_us(fn: Callable[[int], None], n: int) -> tuple[float, float]:
    """Median and p99 of one call, in microseconds."""
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def store_cycle(url: str, n: int = 5000) -> None:
    prefix = f"mfbench:{uuid.uuid4().hex[:8]}:"
    client = connect(url)
    base = DeviceState(0.0, {1: ZonePresence(True, 0.0), 2: ZonePresence(False, None, 0.0)})
    try:
        for name, store in (("in-memory", InMemoryStateStore()), ("redis", RedisStateStore(client, prefix=prefix))):
            def cycle(i: int, store: InMemoryStateStore | RedisStateStore = store) -> None:
                device = f"d{i % 100}"
                with store.locked(device):
                    state = store.get(device) if i >= 100 else base.clone()
                    state.last_ts = float(i)
                    store.due_touch(device, 60)
                    store.put(device, state)

            med, p99 = _per_call_us(cycle, n)
            print(f"store cycle   {name:10} median {med:8.1f} us   p99 {p99:8.1f} us")
    finally:
        drop_prefix(url, prefix)
        client.close()


def http_fix(url: str, n: int = 2000) -> None:
    """Both apps side by side, requests alternating, so machine load hits them alike."""
    prefix = f"mfbench:{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        posts: dict[str, Callable[[int], None]] = {}
        for name, redis_url in (("in-memory", None), ("redis", url)):
            settings = Settings(database_url=f"sqlite:///{Path(tmp) / name}.db", redis_url=redis_url,
                                redis_prefix=prefix, presence_sweep_interval_s=3600, dispatcher_enabled=False)
            c = stack.enter_context(TestClient(create_app(settings)))
            c.headers.update(bearer(operator_key(settings.database_url)))  # the app has migrated the file now
            create_venue(c, "mall")
            create_zone(c, "mall", shapely.box(0, 0, 20, 20))
            device, auth = register(c, "mall")

            def post(i: int, c: TestClient = c, device: str = device, auth: dict[str, str] = auth) -> None:
                r = c.post(f"/v1/devices/{device}/positions", json={"fixes": [fix(10, 10, i * 0.5)]}, headers=auth)
                assert r.status_code == 200, r.text

            posts[name] = post
        times: dict[str, list[float]] = {name: [] for name in posts}
        for i in range(n + 50):  # the first 50: warm up (enter, first touch)
            for name, post in posts.items():
                t = time.perf_counter()
                post(i)
                if i >= 50:
                    times[name].append((time.perf_counter() - t) * 1e6)
    drop_prefix(url, prefix)
    med = {}
    for name, ts in times.items():
        ts.sort()
        med[name] = statistics.median(ts)
        print(f"HTTP 1 fix    {name:10} median {med[name]:8.1f} us   p99 {ts[int(len(ts) * 0.99)]:8.1f} us")
    extra = med["redis"] - med["in-memory"]
    print(f"Redis adds {extra:.0f} us per single-fix request ({extra / med['in-memory']:+.0%})")


if __name__ == "__main__":
    redis_url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    store_cycle(redis_url)
    http_fix(redis_url)
