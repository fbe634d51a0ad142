"""Redis dies under two running replicas and comes back empty: they keep serving, then recover."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
import shapely
from websockets.sync.client import ClientConnection

from tests.auth import bearer
from tests.factories import create_zone, fix
from tests.replicas.cluster import Cluster, ThrowawayRedis, cluster
from tests.replicas.helpers import clients, new_venue, next_message, post_fixes, register, socket_announced, stream

pytestmark = pytest.mark.scenario

SHOP = shapely.box(0, 0, 20, 20)


def _pong(ws: ClientConnection) -> None:
    ws.send('{"type": "ping"}')
    next_message(ws, "pong")


def test_replicas_survive_a_redis_restart(throwaway_redis: ThrowawayRedis, sqlite_template: Path,
                                          tmp_path: Path) -> None:
    database = tmp_path / "mallfence.db"
    shutil.copy(sqlite_template, database)
    with cluster(f"sqlite:///{database}", throwaway_redis.url, tmp_path) as c, clients(c) as (_, b):
        slug = new_venue(b)
        create_zone(b, slug, SHOP)  # type: ignore[arg-type]
        device, token, auth = register(b, slug)
        with stream(c, c.a, device, token) as ws:
            post_fixes(b, device, auth, [fix(10, 10, 0)])
            assert next_message(ws, "event")["kind"] == "enter"

            throwaway_redis.stop()
            # Presence needs Redis: a batch is refused as retryable, nothing else breaks.
            r = b.post(f"/v1/devices/{device}/positions", json={"fixes": [fix(60, 60, 1)]}, headers=auth)
            assert r.status_code == 503, r.text
            for replica in (c.a, c.b):
                assert httpx.get(f"{replica.url}/healthz").status_code == 200
                assert httpx.get(f"{replica.url}/v1/venues/{slug}", headers=bearer(c.api_key)).status_code == 200
            _pong(ws)  # the open socket is untouched
            time.sleep(1.0)  # let the replicas notice and back off a few times

            throwaway_redis.start()  # empty: every key and subscription is gone
            _wait_recovered(c, device)
            assert c.a.alive() and c.b.alive()
            # The restarted Redis forgot the presence, so the device enters again; the push finds A.
            out = post_fixes(b, device, auth, [fix(10, 10, 2)])
            assert [e["kind"] for e in out["events"]] == ["enter"]
            assert next_message(ws, "event")["id"] == out["events"][0]["id"]
            _pong(ws)


def _wait_recovered(c: Cluster, device: str, timeout: float = 15.0) -> None:
    """Both replicas resubscribed and A announced its socket again."""
    c.wait_subscribed(timeout)
    deadline = time.monotonic() + timeout
    while not socket_announced(c, device):
        assert time.monotonic() < deadline, "replica A did not announce its socket again after Redis came back"
        time.sleep(0.05)
