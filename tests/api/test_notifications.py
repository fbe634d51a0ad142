"""Notifications: operator send, websocket with ack and replay, FCM fallback, retries, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import update

from mallfence.config import Settings
from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
from mallfence.delivery.fcm import InMemorySender
from mallfence.delivery.models import Notification
from mallfence.main import create_app
from tests.auth import bearer
from tests.factories import create_venue, create_zone, fix, register

TOKEN = "fcm-token-of-the-test-phone-0001"


@pytest.fixture
def fcm() -> InMemorySender:
    return InMemorySender()


@pytest.fixture
def client(settings: Settings, fcm: InMemorySender, platform_key: str) -> Iterator[TestClient]:
    """The app without its background dispatcher: tests run dispatch passes themselves."""
    settings.dispatcher_enabled = False
    with TestClient(create_app(settings, fcm_sender=fcm), headers=bearer(platform_key)) as c:
        yield c


@pytest.fixture
def dispatcher(client: TestClient, fcm: InMemorySender) -> Dispatcher:
    rt = client.app.state.runtime
    rt.dispatcher = Dispatcher(rt.sessions, is_connected=rt.hub.connected, push_ws=rt.hub.publish, sender=fcm,
                               policy=DispatchPolicy(ack_timeout_s=0.2, backoff_base_s=0.01, max_attempts=3))
    return rt.dispatcher


@pytest.fixture
def shopper(client: TestClient) -> tuple[str, dict]:
    create_venue(client)
    return register(client)


def send(client: TestClient, **body) -> dict:
    r = client.post("/v1/venues/mall/notifications", json={"title": "Hello", "body": "Coffee is on us", **body})
    assert r.status_code == 202, r.text
    return r.json()


def status(client: TestClient, note_id: int) -> dict:
    return client.get(f"/v1/venues/mall/notifications/{note_id}").json()


def add_token(client: TestClient, device: str, auth: dict, token: str = TOKEN) -> None:
    r = client.put(f"/v1/devices/{device}/push-tokens", json={"token": token, "platform": "android"}, headers=auth)
    assert r.status_code == 200, r.text


def test_open_app_gets_it_on_the_websocket_and_acks(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    with client.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as ws:
        assert ws.receive_json()["type"] == "hello"
        note_id = send(client, device_ids=[device], data={"offer": "latte"})["created"][0]
        assert dispatcher.run_once() == 1
        pushed = ws.receive_json()
        assert (pushed["type"], pushed["id"], pushed["data"]) == ("notification", note_id, {"offer": "latte"})
        assert status(client, note_id)["status"] == "awaiting_ack"
        ws.send_json({"type": "ack", "ids": [note_id]})
        assert ws.receive_json() == {"type": "acked", "ids": [note_id], "delivered": 1}
    done = status(client, note_id)
    assert (done["status"], done["channel"]) == ("delivered", "ws")
    assert [(h["channel"], h["outcome"]) for h in done["history"]] == [("ws", "sent"), ("ws", "acked")]
    assert fcm.messages == []


def test_closed_app_gets_it_through_fcm(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    add_token(client, device, auth)
    note_id = send(client, device_ids=[device], collapse_key="offers", deep_link="mall://offers/1")["created"][0]
    dispatcher.run_once()
    [push] = fcm.messages_for(TOKEN)
    assert push.data["notification_id"] == str(note_id) and push.data["deep_link"] == "mall://offers/1"
    assert push.collapse_key == "offers" and 3500 < push.ttl_s <= 3600
    assert (status(client, note_id)["status"], status(client, note_id)["channel"]) == ("sent", "fcm")


def test_same_dedupe_key_twice_is_one_notification(client, shopper) -> None:
    device, _ = shopper
    first = send(client, device_ids=[device], dedupe_key="welcome-2026-11-22")
    again = send(client, device_ids=[device], dedupe_key="welcome-2026-11-22")
    assert (len(first["created"]), first["duplicates"]) == (1, 0)
    assert (again["created"], again["duplicates"]) == ([], 1)


def test_no_channel_waits_until_a_token_arrives(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    note_id = send(client, device_ids=[device])["created"][0]
    dispatcher.run_once()
    assert status(client, note_id)["status"] == "waiting"
    add_token(client, device, auth)
    dispatcher.run_once()
    assert status(client, note_id)["status"] == "sent" and len(fcm.messages) == 1


def test_fcm_unavailable_is_retried_with_backoff_then_succeeds(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    add_token(client, device, auth)
    fcm.answer(TOKEN, "retry", "UNAVAILABLE", retry_after_s=30)
    note_id = send(client, device_ids=[device])["created"][0]
    before = datetime.now(UTC)
    dispatcher.run_once()
    pending = status(client, note_id)
    assert (pending["status"], pending["attempts"], pending["last_error"]) == ("pending", 1, "fcm: UNAVAILABLE")
    with client.app.state.runtime.sessions() as s:
        due = s.get(Notification, note_id).next_attempt_at
    assert due >= before + timedelta(seconds=30)  # the backoff is never sooner than Retry-After
    assert dispatcher.run_once() == 0  # so it is not due yet
    fcm.answer(TOKEN, "sent")
    _wait_until_due(client, note_id)
    dispatcher.run_once()
    assert status(client, note_id)["status"] == "sent"


def test_gives_up_visibly_after_max_attempts(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    add_token(client, device, auth)
    fcm.answer(TOKEN, "retry", "INTERNAL")
    note_id = send(client, device_ids=[device])["created"][0]
    for _ in range(3):
        _wait_until_due(client, note_id)
        dispatcher.run_once()
    failed = status(client, note_id)
    assert failed["status"] == "failed" and "INTERNAL" in failed["last_error"]
    assert [h["outcome"] for h in failed["history"]] == ["retry", "retry", "retry"]


def test_unregistered_token_is_pruned(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    add_token(client, device, auth)
    fcm.answer(TOKEN, "prune", "UNREGISTERED")
    note_id = send(client, device_ids=[device])["created"][0]
    dispatcher.run_once()
    tokens = client.get(f"/v1/devices/{device}/push-tokens", headers=auth).json()
    assert tokens[0]["invalid_reason"] == "UNREGISTERED"
    assert status(client, note_id)["status"] == "waiting"
    send(client, device_ids=[device])
    dispatcher.run_once()
    assert len(fcm.messages) == 1  # the pruned token is not tried again


def test_unacked_push_is_replayed_on_reconnect_then_falls_back_to_fcm(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    add_token(client, device, auth)
    url = f"/v1/devices/{device}/stream"
    with client.websocket_connect(url, headers=auth) as ws:
        ws.receive_json()
        note_id = send(client, device_ids=[device])["created"][0]
        dispatcher.run_once()
        assert ws.receive_json()["id"] == note_id  # shown but never acked
    with client.websocket_connect(url, headers=auth) as ws:
        ws.receive_json()
        dispatcher.run_once()
        assert ws.receive_json()["id"] == note_id  # replayed on reconnect
        _wait_until_due(client, note_id)  # still no ack within the ack timeout
        dispatcher.run_once()
    assert status(client, note_id)["channel"] == "fcm" and len(fcm.messages_for(TOKEN)) == 1


def test_expired_notifications_are_not_sent(client, dispatcher, shopper, fcm) -> None:
    device, auth = shopper
    add_token(client, device, auth)
    note_id = send(client, device_ids=[device], ttl_s=60)["created"][0]
    with client.app.state.runtime.sessions.begin() as s:
        s.execute(update(Notification).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    dispatcher.run_once()
    assert status(client, note_id)["status"] == "expired" and fcm.messages == []


def test_zone_target_reaches_only_devices_inside(client, dispatcher, fcm) -> None:
    create_venue(client)
    food = create_zone(client, "mall", shapely.box(0, 0, 30, 30), name="Food court", kind="food_court")
    inside, inside_auth = register(client)
    outside, outside_auth = register(client)
    client.post(f"/v1/devices/{inside}/positions", json={"fixes": [fix(15, 15, 0)]}, headers=inside_auth)
    client.post(f"/v1/devices/{outside}/positions", json={"fixes": [fix(80, 80, 0)]}, headers=outside_auth)
    result = send(client, zone_id=food["id"], title="Happy hour")
    assert result["devices"] == 1
    notes = client.get("/v1/venues/mall/notifications").json()
    assert [n["device_id"] for n in notes] == [inside]


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"device_ids": ["x"], "zone_id": 1}, 422, "exactly one"),
    ({}, 422, "exactly one"),
    ({"device_ids": ["no-such-device"]}, 404, "not found in this venue"),
    ({"zone_id": 999}, 404, "zone 999"),
    ({"device_ids": ["x"], "ttl_s": 10}, 422, "ttl_s"),
    ({"device_ids": ["x"], "data": {"n": 1}}, 422, "data"),
])
def test_bad_sends(client, shopper, body: dict, code: int, words: str) -> None:
    r = client.post("/v1/venues/mall/notifications", json={"title": "t", "body": "b", **body})
    assert r.status_code == code and words in r.text, r.text


def _wait_until_due(client: TestClient, note_id: int) -> None:
    """Make the notification due now (its backoff or ack deadline passed), without sleeping."""
    with client.app.state.runtime.sessions.begin() as s:
        s.execute(update(Notification).where(Notification.id == note_id)
                  .values(next_attempt_at=datetime.now(UTC) - timedelta(milliseconds=1)))
