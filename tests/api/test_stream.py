"""The device websocket: fixes upstream, events and receipts downstream, errors without hang-ups."""

from __future__ import annotations

import json

import pytest
import shapely
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.factories import create_venue, create_zone, fix, register


@pytest.fixture
def device(client: TestClient) -> tuple[str, dict]:
    create_venue(client)
    create_zone(client, "mall", shapely.box(0, 0, 20, 20), name="Books")
    return register(client)


def token(auth: dict) -> str:
    return auth["Authorization"].split()[1]


def receive_until(ws, kind: str, limit: int = 10) -> list[dict]:
    got = []
    for _ in range(limit):
        got.append(ws.receive_json())
        if got[-1]["type"] == kind:
            return got
    raise AssertionError(f"no {kind} in {got}")


def test_fixes_in_events_out(client: TestClient, device) -> None:
    device_id, auth = device
    with client.websocket_connect(f"/v1/devices/{device_id}/stream?token={token(auth)}") as ws:
        assert ws.receive_json() == {"type": "hello", "device_id": device_id, "venue": "mall"}
        ws.send_json({"type": "fix", **fix(-5, 10, 0, fix_id="a")})
        assert ws.receive_json() == {"type": "receipt", "accepted": 1, "dropped": []}
        ws.send_json({"type": "fixes", "fixes": [fix(10, 10, 5, fix_id="b"), fix(10, 11, 6, fix_id="c")]})
        messages = receive_until(ws, "receipt")
        events = [m for m in messages if m["type"] == "event"]
        assert [(e["kind"], e["zone"]["name"], e["fix_id"]) for e in events] == [("enter", "Books", "b")]
        assert messages[-1] == {"type": "receipt", "accepted": 2, "dropped": []}
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_bad_messages_get_errors_and_the_connection_stays(client: TestClient, device) -> None:
    device_id, auth = device
    with client.websocket_connect(f"/v1/devices/{device_id}/stream", headers=auth) as ws:
        ws.receive_json()
        cases = [
            ("{", "invalid_json"),
            (json.dumps({"type": "teleport"}), "invalid_message"),
            (json.dumps({"type": "fix", "lat": 1}), "invalid_message"),
            (json.dumps({"type": "fix", **fix(0, 0, 0), "accuracy_m": "far"}), "invalid_message"),
            (json.dumps({"type": "fix", **fix(90_000, 0, 0)}), "invalid_fix"),
            (json.dumps([1, 2]), "invalid_message"),
        ]
        for text, code in cases:
            ws.send_text(text)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["code"] == code, (text, reply)
            assert reply["detail"]
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["code"] == "expected_text"
        ws.send_json({"type": "fix", **fix(10, 10, 0)})
        assert [m["type"] for m in receive_until(ws, "receipt")] == ["event", "receipt"]


def test_events_from_http_reach_the_open_socket(client: TestClient, device) -> None:
    device_id, auth = device
    with client.websocket_connect(f"/v1/devices/{device_id}/stream", headers=auth) as ws:
        ws.receive_json()
        r = client.post(f"/v1/devices/{device_id}/positions", json={"fixes": [fix(10, 10, 0)]}, headers=auth)
        event = r.json()["events"][0]
        assert ws.receive_json() == {"type": "event", **event}


@pytest.mark.parametrize(("path", "code"), [("/v1/devices/{d}/stream?token=wrong", 4401),
                                            ("/v1/devices/{d}/stream", 4401),
                                            ("/v1/devices/unknown/stream?token=x", 4404)])
def test_refused_connections_close_with_a_named_code(client: TestClient, device, path: str, code: int) -> None:
    device_id, _ = device
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(path.format(d=device_id)) as ws:
        ws.receive_json()
    assert closed.value.code == code
