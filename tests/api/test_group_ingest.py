"""Group ingest: websocket fixes of many devices applied together, each message keeping its own guarantees."""

from __future__ import annotations

import shapely
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from mallfence.devices.models import Device
from mallfence.errors import Invalid
from mallfence.tracking.group import ingest_many
from mallfence.tracking.schemas import FixIn
from tests.api.test_stream import receive_until, token
from tests.factories import create_venue, create_zone, fix, register


def _world(client: TestClient, n: int) -> list[tuple[str, dict]]:
    create_venue(client)
    create_zone(client, "mall", shapely.box(0, 0, 20, 20), name="Books")
    return [register(client) for _ in range(n)]


def _events(client: TestClient, device_id: str, auth: dict) -> list[tuple[str, str | None]]:
    r = client.get(f"/v1/devices/{device_id}/events", headers=auth)
    assert r.status_code == 200, r.text
    return [(e["kind"], e["fix_id"]) for e in r.json()]


def _device(client: TestClient, device_id: str) -> Device:
    with client.app.state.runtime.sessions() as s:  # type: ignore[attr-defined]
        device = s.get(Device, device_id)
        s.expunge(device)
        return device


def _groups() -> tuple[float, float]:
    return (REGISTRY.get_sample_value("mallfence_ingest_group_messages_count") or 0.0,
            REGISTRY.get_sample_value("mallfence_ingest_group_messages_sum") or 0.0)


def test_sockets_sending_at_once_each_get_their_own_events_and_receipts(client: TestClient) -> None:
    devices = _world(client, 6)
    groups0, messages0 = _groups()
    sockets = [client.websocket_connect(f"/v1/devices/{d}/stream?token={token(a)}") for d, a in devices]
    try:
        for ws in sockets:
            ws.__enter__()
            ws.receive_json()  # hello
        # every socket sends before any reads: the messages wait together for the ingest thread
        for i, ws in enumerate(sockets):
            ws.send_json({"type": "fix", **fix(-5, 10, 0, fix_id=f"out-{i}")})
            ws.send_json({"type": "fix", **fix(10, 10, 5, fix_id=f"in-{i}")})
        for i, ws in enumerate(sockets):
            first = receive_until(ws, "receipt")
            second = receive_until(ws, "receipt")
            assert first == [{"type": "receipt", "accepted": 1, "dropped": []}]
            assert [(m["type"], m.get("fix_id")) for m in second] == [("event", f"in-{i}"), ("receipt", None)]
    finally:
        for ws in sockets:
            ws.__exit__(None, None, None)
    for i, (device_id, auth) in enumerate(devices):
        assert _events(client, device_id, auth) == [("enter", f"in-{i}")]  # stored, and only its own
    groups, messages = _groups()
    assert messages - messages0 == 12  # every message went through the group worker, counted once
    assert groups - groups0 >= 1


def test_a_refused_batch_does_not_sink_the_others_in_its_group(client: TestClient) -> None:
    (a, auth_a), (b, auth_b) = _world(client, 2)
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    good = [FixIn.model_validate(fix(10, 10, 0, fix_id="a1")), FixIn.model_validate(fix(10, 11, 1, fix_id="a2"))]
    far = [FixIn.model_validate(fix(90_000, 0, 0, fix_id="b1"))]
    results = ingest_many(rt, [(_device(client, a), good), (_device(client, b), far)])
    assert isinstance(results[1], Invalid) and "km from venue" in results[1].message
    assert results[0].accepted == 2 and [e.kind for e in results[0].events] == ["enter"]  # type: ignore[union-attr]
    assert _events(client, a, auth_a) == [("enter", "a1")]
    assert _events(client, b, auth_b) == []


def test_when_the_shared_transaction_fails_each_batch_is_applied_alone(client: TestClient) -> None:
    (a, auth_a), (b, auth_b) = _world(client, 2)
    rt = client.app.state.runtime  # type: ignore[attr-defined]

    def breaks_on_b(batch) -> None:  # a listener with a bug that only b's events reach
        if batch.device.id == b:
            raise RuntimeError("listener bug")

    rt.listeners.append(breaks_on_b)
    try:
        results = ingest_many(rt, [(_device(client, a), [FixIn.model_validate(fix(10, 10, 0, fix_id="a1"))]),
                                   (_device(client, b), [FixIn.model_validate(fix(10, 10, 0, fix_id="b1"))])])
    finally:
        rt.listeners.remove(breaks_on_b)
    assert isinstance(results[1], RuntimeError)
    assert [e.kind for e in results[0].events] == ["enter"]  # type: ignore[union-attr]
    assert _events(client, a, auth_a) == [("enter", "a1")]
    assert _events(client, b, auth_b) == []
    # b's state did not move: the same fix again gives the same enter, now that the listener is gone
    again = ingest_many(rt, [(_device(client, b), [FixIn.model_validate(fix(10, 10, 0, fix_id="b1"))])])
    assert [e.kind for e in again[0].events] == ["enter"]  # type: ignore[union-attr]
    assert _events(client, b, auth_b) == [("enter", "b1")]


def test_one_device_twice_in_a_group_is_applied_in_order(client: TestClient) -> None:
    ((a, auth_a),) = _world(client, 1)
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    device = _device(client, a)
    results = ingest_many(rt, [(device, [FixIn.model_validate(fix(10, 10, 0, fix_id="in"))]),
                               (device, [FixIn.model_validate(fix(-30, 10, 60, fix_id="out"))]),
                               (device, [FixIn.model_validate(fix(-30, 11, 30, fix_id="late"))])])
    assert [e.kind for e in results[0].events] == ["enter"]  # type: ignore[union-attr]
    assert [d.reason for d in results[2].dropped] == ["stale"]  # type: ignore[union-attr]  # older than "out"
    assert _events(client, a, auth_a)[0] == ("enter", "in")


def test_a_failure_after_the_commit_is_not_applied_twice(client: TestClient, monkeypatch) -> None:
    """Events committed, then publishing one device's events fails: that caller hears it, nothing is stored
    again for anyone (a retry of the group would have doubled every event)."""
    (a, auth_a), (b, auth_b) = _world(client, 2)
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    publish = rt.hub.publish

    def breaks_on_b(device_id: str, messages: list) -> None:
        if device_id == b:
            raise RuntimeError("socket hub bug")
        publish(device_id, messages)

    monkeypatch.setattr(rt.hub, "publish", breaks_on_b)
    results = ingest_many(rt, [(_device(client, a), [FixIn.model_validate(fix(10, 10, 0, fix_id="a1"))]),
                               (_device(client, b), [FixIn.model_validate(fix(10, 10, 0, fix_id="b1"))])])
    assert isinstance(results[1], RuntimeError)
    assert [e.kind for e in results[0].events] == ["enter"]  # type: ignore[union-attr]
    assert _events(client, a, auth_a) == [("enter", "a1")]
    assert _events(client, b, auth_b) == [("enter", "b1")]  # stored once, and b's presence kept it
    monkeypatch.undo()
    again = ingest_many(rt, [(_device(client, b), [FixIn.model_validate(fix(10, 11, 1, fix_id="b2"))])])
    assert again[0].events == []  # type: ignore[union-attr]
