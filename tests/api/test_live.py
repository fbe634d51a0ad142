"""The operators' live view: positions and zone events of a venue's shoppers, under pseudonyms."""

from __future__ import annotations

import pytest
import shapely
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.factories import create_venue, create_zone, fix, register


def test_positions_and_events_stream_to_the_venue_console(client: TestClient) -> None:
    create_venue(client)
    create_venue(client, "other")
    create_zone(client, "mall", shapely.box(0, 0, 20, 20), name="Books")
    a, a_auth = register(client)
    b, b_auth = register(client)
    elsewhere, e_auth = register(client, "other")
    with client.websocket_connect("/v1/venues/mall/live") as live:
        assert live.receive_json() == {"type": "hello", "venue": "mall"}
        client.post(f"/v1/devices/{elsewhere}/positions", headers=e_auth, json={"fixes": [fix(5, 5, 0)]})
        client.post(f"/v1/devices/{a}/positions", headers=a_auth, json={"fixes": [fix(-5, 5, 0), fix(5, 5, 10)]})
        pos, event = live.receive_json(), live.receive_json()
        client.post(f"/v1/devices/{b}/positions", headers=b_auth, json={"fixes": [fix(30, 5, 0)]})
        other = live.receive_json()
        client.post(f"/v1/devices/{a}/positions", headers=a_auth, json={"fixes": [fix(6, 5, 20)]})
        again = live.receive_json()
    assert pos["type"] == "position" and pos["floor"] == 0 and pos["source"] == "gps"
    assert (pos["lon"], pos["lat"]) == (fix(5, 5, 10)["lon"], fix(5, 5, 10)["lat"])  # the batch's newest fix
    assert event["type"] == "event" and event["kind"] == "enter" and event["zone"]["name"] == "Books"
    assert event["shopper"] == pos["shopper"] == again["shopper"] != other["shopper"]
    assert a not in pos["shopper"] and len(pos["shopper"]) == 10  # a pseudonym, not the device id


def test_an_unknown_venue_is_refused(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/v1/venues/nowhere/live") as ws:
        ws.receive_json()
    assert exc.value.code == 4404


def test_a_browser_sends_the_key_as_a_subprotocol_not_in_the_url(client: TestClient, platform_key: str) -> None:
    # the URL (with any ?token=) is what access logs keep; the subprotocol header is not logged
    create_venue(client)
    # a fresh headers dict each time: the test client writes the subprotocols into the one it is given
    with client.websocket_connect("/v1/venues/mall/live", headers={"Authorization": ""},
                                  subprotocols=["mallfence.bearer", platform_key]) as live:
        assert live.accepted_subprotocol == "mallfence.bearer"  # browsers drop a socket that answers none
        assert live.receive_json() == {"type": "hello", "venue": "mall"}
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(
            "/v1/venues/mall/live", headers={"Authorization": ""},
            subprotocols=["mallfence.bearer", "mfk_wrong"]) as ws:
        ws.receive_json()
    assert exc.value.code == 4401
