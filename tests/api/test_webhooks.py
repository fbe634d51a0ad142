"""Webhooks: endpoint API, zone and notification events out, signatures, retries, ordering, 410, rotation."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import update

from mallfence.config import Settings
from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
from mallfence.delivery.fcm import InMemorySender
from mallfence.delivery.models import Notification, WebhookDelivery
from mallfence.delivery.webhook_dispatcher import WebhookDispatcher, WebhookPolicy
from mallfence.delivery.webhooks import verify_signature
from mallfence.main import create_app
from tests.auth import bearer
from tests.factories import create_venue, create_zone, fix, register

TOKEN = "fcm-token-of-the-test-phone-0001"
HOOKS = "/v1/venues/mall/webhooks"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and answers what the test scripted (else 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                script = receiver.scripts[self.path]
                code, headers = script.pop(0) if script else (200, {})
                if code == 0:  # "hang": answer later than the client waits
                    time.sleep(1.0)
                    code = 200
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *a: None  # a client that timed out and left is fine
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answer(self, path: str, *codes: int, **headers: str) -> None:
        self.scripts[path] += [(c, {k.replace("_", "-"): v for k, v in headers.items()}) for c in codes]

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fcm() -> InMemorySender:
    return InMemorySender()


@pytest.fixture
def client(settings: Settings, fcm: InMemorySender, platform_key: str) -> Iterator[TestClient]:
    """The app with no background dispatchers: tests run the passes themselves."""
    quiet = settings.model_copy(update={"dispatcher_enabled": False, "webhooks_enabled": False})
    with TestClient(create_app(quiet, fcm_sender=fcm), headers=bearer(platform_key)) as c:
        yield c


@pytest.fixture
def hooks(client: TestClient) -> Iterator[WebhookDispatcher]:
    policy = WebhookPolicy(timeout_s=0.3, backoff_base_s=0.01, backoff_cap_s=0.05, max_attempts=3, trust_env=False)
    dispatcher = WebhookDispatcher(client.app.state.runtime.sessions, policy=policy)
    yield dispatcher
    dispatcher.stop()


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client)
    return create_zone(client, "mall", shapely.box(0, 0, 20, 20), name="Books", external_id="u1")


def add_endpoint(client: TestClient, url: str, types: tuple[str, ...] = ("zone.enter", "zone.exit"),
                 slug: str = "mall") -> dict:
    r = client.post(f"/v1/venues/{slug}/webhooks", json={"url": url, "event_types": list(types)})
    assert r.status_code == 201, r.text
    return r.json()


def walk(client: TestClient, device: str, auth: dict, *fixes: dict) -> list[dict]:
    r = client.post(f"/v1/devices/{device}/positions", json={"fixes": list(fixes)}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def deliveries(client: TestClient, endpoint_id: int, **params: str) -> list[dict]:
    r = client.get(f"{HOOKS}/{endpoint_id}/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def make_due(client: TestClient) -> None:
    """Every pending delivery is due now (its backoff passed), without sleeping."""
    with client.app.state.runtime.sessions.begin() as s:
        s.execute(update(WebhookDelivery).where(WebhookDelivery.status == "pending")
                  .values(next_attempt_at=datetime.now(UTC) - timedelta(milliseconds=1)))


# -- endpoint API -----------------------------------------------------------------------------------------
def test_endpoint_crud_and_secret_shown_once(client, mall) -> None:
    created = add_endpoint(client, "https://ops.example.com/hook")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 6 + 64
    assert created["event_types"] == ["zone.enter", "zone.exit"] and created["active"] is True
    listed = client.get(HOOKS).json()
    assert [e["id"] for e in listed] == [created["id"]] and listed[0]["secret"] is None
    url = f"{HOOKS}/{created['id']}"
    assert client.get(url).json()["secret"] is None
    r = client.patch(url, json={"event_types": ["zone.dwell", "zone.enter", "zone.dwell"], "description": "BI"})
    assert r.status_code == 200, r.text
    assert (r.json()["event_types"], r.json()["description"], r.json()["secret"]) == (["zone.enter", "zone.dwell"],
                                                                                     "BI", None)
    rotated = client.patch(url, json={"rotate_secret": True}).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert client.patch(url, json={"description": None}).json()["description"] is None
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"url": "ftp://ops.example.com/x"}, "url", "http"),
    ({"url": "https://" + "a" * 2048}, "url", "2048"),
    ({"url": "https:///nohost"}, "url", "no host"),
    ({"event_types": []}, "event_types", "at least 1"),
    ({"event_types": ["zone.enter", "zone.teleport"]}, "event_types", "zone.teleport"),
    ({"event_types": ["ping"]}, "event_types", "'ping'"),
    ({"secret": "mine"}, "secret", "Extra"),
])
def test_bad_endpoints_name_the_field(client, mall, body: dict, field: str, words: str) -> None:
    r = client.post(HOOKS, json={"url": "https://ops.example.com/hook", "event_types": ["zone.enter"], **body})
    assert r.status_code == 422, r.text
    [issue] = r.json()["detail"]
    assert field in issue["loc"] and words in issue["msg"], issue


def test_endpoints_belong_to_their_venue(client, mall) -> None:
    create_venue(client, "other")
    theirs = add_endpoint(client, "https://other.example.com/hook", slug="other")
    assert client.get(f"{HOOKS}/{theirs['id']}").status_code == 404
    assert client.patch(f"{HOOKS}/{theirs['id']}", json={"active": False}).status_code == 404
    assert client.get("/v1/venues/nowhere/webhooks").status_code == 404


# -- zone events --------------------------------------------------------------------------------------------
def test_zone_events_arrive_signed_in_order_with_stable_ids(client, hooks, mall, receiver) -> None:
    endpoint = add_endpoint(client, receiver.url())
    device, auth = register(client)
    events = walk(client, device, auth, fix(-10, 10, 0), fix(10, 10, 10, fix_id="in"), fix(10, 12, 45),
                  fix(30, 10, 60, fix_id="out"))
    assert [e["kind"] for e in events] == ["enter", "dwell", "exit"]  # dwell is not subscribed
    assert hooks.run_once() == 2
    assert hooks.run_once() == 0
    enter, exit_ = receiver.requests
    for got, event in ((enter, events[0]), (exit_, events[2])):
        h = got.headers
        assert h["Content-Type"] == "application/json" and h["User-Agent"] == "mallfence-webhooks/0.1"
        assert verify_signature(endpoint["secret"], h["Mallfence-Timestamp"], got.body, h["Mallfence-Signature"])
        body = got.json()
        assert body["id"] == f"evt_{event['id']}" and body["type"] == f"zone.{event['kind']}"
        assert h["Mallfence-Event"] == body["type"] and body["venue"] == "mall"
        assert body["data"]["device_id"] == device and body["data"]["fix_id"] == event["fix_id"]
        assert body["data"]["zone"] == {"id": mall["id"], "external_id": "u1", "name": "Books", "kind": "store",
                                        "level": 0}
        assert datetime.fromisoformat(body["data"]["at"]) == datetime.fromisoformat(event["at"])
    assert exit_.json()["data"]["duration_s"] == 50.0 and exit_.json()["data"]["reason"] == "left"
    listed = deliveries(client, endpoint["id"])
    assert [(d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in listed] == [
        ("zone.exit", "delivered", 1, 200), ("zone.enter", "delivered", 1, 200)]  # newest first
    assert enter.headers["Mallfence-Delivery"] == str(listed[1]["id"])


def test_signature_check_refuses_tampering_and_replays() -> None:
    body, ts = b'{"id":"evt_1"}', int(time.time())
    from mallfence.delivery.webhooks import sign

    header = sign("whsec_k", ts, body)
    assert verify_signature("whsec_k", str(ts), body, header)
    assert verify_signature("whsec_k", ts, body.decode(), f"v1=00, {header}")
    assert not verify_signature("whsec_k", ts, body + b" ", header)
    assert not verify_signature("whsec_other", ts, body, header)
    assert not verify_signature("whsec_k", ts, body, header, now=ts + 301)  # replayed later
    assert not verify_signature("whsec_k", "soon", body, header)


def test_other_venues_endpoint_receives_nothing(client, hooks, mall, receiver) -> None:
    create_venue(client, "other")
    add_endpoint(client, receiver.url(), slug="other")
    device, auth = register(client)
    assert len(walk(client, device, auth, fix(10, 10, 0), fix(30, 10, 10))) == 2
    assert hooks.run_once() == 0 and receiver.requests == []


def test_503_is_retried_honouring_retry_after(client, hooks, mall, receiver) -> None:
    endpoint = add_endpoint(client, receiver.url())
    receiver.answer("/hook", 503, Retry_After="120")
    device, auth = register(client)
    walk(client, device, auth, fix(10, 10, 0))
    hooks.run_once()
    [waiting] = deliveries(client, endpoint["id"])
    assert (waiting["status"], waiting["attempts"], waiting["last_status_code"]) == ("pending", 1, 503)
    assert "503" in waiting["last_error"]
    due_in = (datetime.fromisoformat(waiting["next_attempt_at"]) - datetime.now(UTC)).total_seconds()
    assert 100 < due_in <= 120
    assert hooks.run_once() == 0  # not due yet
    make_due(client)
    assert hooks.run_once() == 1
    [done] = deliveries(client, endpoint["id"], status="delivered")
    assert (done["attempts"], done["last_status_code"], done["last_error"]) == (2, 200, None)
    first, again = receiver.requests
    assert first.json()["id"] == again.json()["id"]  # receivers de-duplicate on it
    assert first.headers["Mallfence-Delivery"] == again.headers["Mallfence-Delivery"]


def test_a_failing_delivery_holds_later_ones_of_its_endpoint_only(client, hooks, mall, receiver) -> None:
    slow = add_endpoint(client, receiver.url("/down"))
    fine = add_endpoint(client, receiver.url("/up"))
    receiver.answer("/down", 500, Retry_After="60")
    device, auth = register(client)
    walk(client, device, auth, fix(10, 10, 0), fix(30, 10, 10))  # enter, exit
    hooks.run_once()
    assert [e["type"] for e in receiver.events("/up")] == ["zone.enter", "zone.exit"]
    assert [e["type"] for e in receiver.events("/down")] == ["zone.enter"]  # the exit waits behind it
    walk(client, device, auth, fix(10, 10, 20))  # a new event is due now, but must not overtake either
    hooks.run_once()
    assert len(receiver.events("/down")) == 1 and len(receiver.events("/up")) == 3
    assert [d["attempts"] for d in deliveries(client, slow["id"])] == [0, 0, 1]
    make_due(client)
    hooks.run_once()
    assert [e["type"] for e in receiver.events("/down")] == ["zone.enter", "zone.enter", "zone.exit", "zone.enter"]
    assert {d["status"] for d in deliveries(client, slow["id"]) + deliveries(client, fine["id"])} == {"delivered"}


def test_gives_up_visibly_after_max_attempts(client, hooks, mall, receiver) -> None:
    endpoint = add_endpoint(client, receiver.url())
    receiver.answer("/hook", 500, 502, 504)
    device, auth = register(client)
    walk(client, device, auth, fix(10, 10, 0))
    for _ in range(3):
        make_due(client)
        hooks.run_once()
    [failed] = deliveries(client, endpoint["id"], status="failed")
    assert failed["attempts"] == 3 and failed["last_status_code"] == 504
    assert failed["last_error"].startswith("gave up after 3 attempt(s): HTTP 504")
    make_due(client)
    assert hooks.run_once() == 0 and len(receiver.requests) == 3


def test_410_gone_deactivates_the_endpoint(client, hooks, mall, receiver) -> None:
    endpoint = add_endpoint(client, receiver.url())
    receiver.answer("/hook", 410)
    device, auth = register(client)
    walk(client, device, auth, fix(10, 10, 0), fix(30, 10, 10))
    hooks.run_once()
    assert len(receiver.requests) == 1
    assert client.get(f"{HOOKS}/{endpoint['id']}").json()["active"] is False
    gone, held = deliveries(client, endpoint["id"])[::-1]
    assert gone["status"] == "failed" and "deactivated" in gone["last_error"] and gone["last_status_code"] == 410
    assert held["status"] == "failed" and "410" in held["last_error"]
    walk(client, device, auth, fix(10, 10, 20))
    assert len(deliveries(client, endpoint["id"])) == 2  # nothing queued for an inactive endpoint
    assert client.post(f"{HOOKS}/{endpoint['id']}/test").status_code == 409


@pytest.mark.parametrize(("make_url", "words"), [
    (lambda rcv: rcv.url("/moved"), "redirect to 'https://elsewhere.example/'"),
    (lambda rcv: rcv.url("/slow"), "timeout after 0.3 s"),
    (lambda rcv: "http://127.0.0.1:9/closed", "ConnectError"),
])
def test_transport_problems_are_recorded_and_retried(client, hooks, mall, receiver, make_url, words: str) -> None:
    receiver.answer("/moved", 302, Location="https://elsewhere.example/")
    receiver.answer("/slow", 0)
    endpoint = add_endpoint(client, make_url(receiver))
    assert client.post(f"{HOOKS}/{endpoint['id']}/test").status_code == 202
    hooks.run_once()
    [ping] = deliveries(client, endpoint["id"])
    assert (ping["event_type"], ping["status"], ping["attempts"]) == ("ping", "pending", 1)
    assert words in ping["last_error"], ping["last_error"]
    assert all(r.path != "/" for r in receiver.requests)  # the redirect was not followed


def test_secret_rotation_takes_effect(client, hooks, mall, receiver) -> None:
    endpoint = add_endpoint(client, receiver.url())
    new = client.patch(f"{HOOKS}/{endpoint['id']}", json={"rotate_secret": True}).json()["secret"]
    r = client.post(f"{HOOKS}/{endpoint['id']}/test")
    assert r.status_code == 202 and r.json()["event_id"].startswith("ping_")
    hooks.run_once()
    [ping] = receiver.requests
    h = ping.headers
    assert ping.json()["type"] == "ping" and h["Mallfence-Event"] == "ping"
    assert verify_signature(new, h["Mallfence-Timestamp"], ping.body, h["Mallfence-Signature"])
    assert not verify_signature(endpoint["secret"], h["Mallfence-Timestamp"], ping.body, h["Mallfence-Signature"])


# -- notification outcomes ------------------------------------------------------------------------------------
def test_notification_outcomes_arrive(client, hooks, mall, receiver, fcm) -> None:
    rt = client.app.state.runtime
    push = Dispatcher(rt.sessions, is_connected=rt.hub.connected, push_ws=rt.hub.publish, sender=fcm,
                      policy=DispatchPolicy(backoff_base_s=0.01))
    add_endpoint(client, receiver.url(), ("notification.sent", "notification.expired", "zone.enter"))
    device, auth = register(client)
    r = client.put(f"/v1/devices/{device}/push-tokens", json={"token": TOKEN, "platform": "android"}, headers=auth)
    assert r.status_code == 200, r.text
    sent = client.post("/v1/venues/mall/notifications", json={"title": "Hi", "body": "b", "device_ids": [device]})
    late = client.post("/v1/venues/mall/notifications", json={"title": "Late", "body": "b", "device_ids": [device]})
    sent_id, late_id = sent.json()["created"][0], late.json()["created"][0]
    with rt.sessions.begin() as s:
        s.execute(update(Notification).where(Notification.id == late_id)
                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    push.run_once()
    assert hooks.run_once() == 2
    got = {e["type"]: e for e in receiver.events()}
    assert got["notification.sent"]["id"] == f"ntf_{sent_id}_sent"
    assert got["notification.sent"]["data"] | {"sent_at": None} == {
        "notification_id": sent_id, "device_id": device, "status": "sent", "channel": "fcm", "category": "operator",
        "title": "Hi", "attempts": 1, "last_error": None, "sent_at": None, "delivered_at": None}
    assert got["notification.expired"]["data"]["notification_id"] == late_id
    push.run_once()
    assert hooks.run_once() == 0  # each outcome is reported once


def test_started_dispatcher_delivers_when_woken(client, mall, receiver) -> None:
    dispatcher = WebhookDispatcher(client.app.state.runtime.sessions, poll_s=60,  # only a wake-up can explain it
                                   policy=WebhookPolicy(timeout_s=1, trust_env=False))
    dispatcher.start()
    try:
        add_endpoint(client, receiver.url())
        device, auth = register(client)
        walk(client, device, auth, fix(10, 10, 0), fix(30, 10, 10))
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e["type"] for e in receiver.events()] == ["zone.enter", "zone.exit"]
    finally:
        dispatcher.stop()
