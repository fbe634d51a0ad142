"""Client side of the replica tests: venues over HTTP, device streams over real websockets."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.auth import app_key, bearer
from tests.factories import create_venue
from tests.replicas.cluster import Cluster, Replica


@contextlib.contextmanager
def clients(c: Cluster) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    headers = bearer(c.api_key)
    with httpx.Client(base_url=c.a.url, timeout=10, headers=headers) as a, \
            httpx.Client(base_url=c.b.url, timeout=10, headers=headers) as b:
        yield a, b


def new_venue(client: httpx.Client) -> str:
    slug = f"mall-{uuid.uuid4().hex[:8]}"
    create_venue(client, slug)  # type: ignore[arg-type]  # same calls as TestClient
    return slug


def register(client: httpx.Client, slug: str) -> tuple[str, str, dict[str, str]]:
    r = client.post("/v1/devices", json={"venue": slug, "platform": "stub"}, headers=app_key(client, slug))
    assert r.status_code == 201, r.text
    body = r.json()
    return body["device_id"], body["token"], {"Authorization": f"Bearer {body['token']}"}


def post_fixes(client: httpx.Client, device: str, auth: dict[str, str], fixes: list[dict[str, Any]]) -> dict[str, Any]:
    r = client.post(f"/v1/devices/{device}/positions", json={"fixes": fixes}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def socket_announced(c: Cluster, device: str) -> bool:
    client = c.redis()
    try:
        return bool(client.zcard(f"{c.prefix}conn:{device}"))
    finally:
        client.close()


@contextlib.contextmanager
def stream(c: Cluster, replica: Replica, device: str, token: str) -> Iterator[ClientConnection]:
    """The device's websocket on ``replica``, once the hello came and the cluster knows where it is."""
    with connect(f"{replica.ws}/v1/devices/{device}/stream?token={token}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        wait_until(lambda: socket_announced(c, device), 5, "the socket to be announced in Redis")
        yield ws


def next_message(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of type ``kind`` (others, like receipts, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind!r} message within {timeout} s"
        try:
            message = json.loads(ws.recv(timeout=remaining))
        except TimeoutError:
            raise AssertionError(f"no {kind!r} message within {timeout} s") from None
        if message["type"] == kind:
            return message
