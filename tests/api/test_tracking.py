"""Positions in, events out over HTTP: transitions, ordering, floors, and refusals."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from fastapi.testclient import TestClient

from tests.factories import create_venue, create_zone, fix, register

STORE = shapely.box(0, 0, 20, 20)


def post(client: TestClient, device: str, headers: dict, fixes: list[dict]):
    return client.post(f"/v1/devices/{device}/positions", json={"fixes": fixes}, headers=headers)


def kinds(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["kind"], e["zone"]["name"]) for e in events]


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client)
    return create_zone(client, "mall", STORE, name="Books", external_id="u1")


def test_walk_in_linger_walk_out(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = post(client, device, auth, [fix(-10, 10, 0), fix(10, 10, 10, fix_id="in"), fix(10, 12, 45),
                                    fix(30, 10, 60, fix_id="out")])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 4 and body["dropped"] == []
    assert kinds(body["events"]) == [("enter", "Books"), ("dwell", "Books"), ("exit", "Books")]
    enter, dwell, exit_ = body["events"]
    assert enter["fix_id"] == "in" and exit_["fix_id"] == "out"
    assert exit_["duration_s"] == 50.0 and exit_["reason"] == "left"
    assert dwell["duration_s"] == 35.0
    listed = client.get(f"/v1/devices/{device}/events", headers=auth).json()
    assert [e["id"] for e in listed] == [e["id"] for e in body["events"]]
    after = client.get(f"/v1/devices/{device}/events", params={"after_id": enter["id"]}, headers=auth).json()
    assert [e["kind"] for e in after] == ["dwell", "exit"]


def test_batch_is_applied_in_device_time_order_and_stale_fixes_are_dropped(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = post(client, device, auth, [fix(10, 10, 20), fix(-10, 10, 0)])  # sent out of order
    assert kinds(r.json()["events"]) == [("enter", "Books")]
    r = post(client, device, auth, [fix(-10, 10, 5), fix(10, 10, 20), fix(10, 11, 25)])  # two already seen/older
    assert r.json()["dropped"] == [{"index": 0, "reason": "stale"}, {"index": 1, "reason": "stale"}]
    assert r.json()["accepted"] == 1 and r.json()["events"] == []


def test_gps_jitter_across_the_wall_does_not_flap(client: TestClient) -> None:
    create_venue(client)
    create_zone(client, "mall", STORE, name="Books", presence={"enter_debounce_s": 5, "exit_debounce_s": 10})
    device, auth = register(client)
    # standing in the doorway: fixes alternate 1 m either side of the wall at x = 0
    fixes = [fix(1.0 if i % 2 else -1.0, 10, i) for i in range(120)]
    assert post(client, device, auth, fixes).json()["events"] == []
    # walking in, then jitter deep inside, then leaving for good
    inside = [fix(8 + (i % 3), 10, 200 + i) for i in range(30)]
    outside = [fix(-8, 10, 300 + i) for i in range(30)]
    events = post(client, device, auth, inside + outside).json()["events"]
    assert [e["kind"] for e in events] == ["enter", "exit"]


def test_poor_accuracy_cannot_enter(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = post(client, device, auth, [fix(10, 10, t, accuracy=60) for t in range(0, 60, 5)])
    assert r.json()["events"] == []
    assert kinds(post(client, device, auth, [fix(10, 10, 70, accuracy=4)]).json()["events"]) == [("enter", "Books")]


def test_floors_select_zones(client: TestClient) -> None:
    create_venue(client, levels=(0, 1))
    create_zone(client, "mall", STORE, name="Ground shop", level=0)
    create_zone(client, "mall", STORE, name="Upper shop", level=1)
    create_zone(client, "mall", shapely.box(-50, -50, 100, 100), name="Mall", kind="venue", level=None,
                presence={"enter_debounce_s": 0, "exit_debounce_s": 0})
    device, auth = register(client)
    events = post(client, device, auth, [fix(10, 10, 0, floor=None)]).json()["events"]
    assert kinds(events) == [("enter", "Mall")]  # no floor: venue-wide zones only
    events = post(client, device, auth, [fix(10, 10, 5, floor=1)]).json()["events"]
    assert kinds(events) == [("enter", "Upper shop")]
    events = post(client, device, auth, [fix(10, 10, 10, floor=0)]).json()["events"]
    assert kinds(events) == [("exit", "Upper shop"), ("enter", "Ground shop")]


def test_nested_zones_each_emit(client: TestClient) -> None:
    create_venue(client)
    create_zone(client, "mall", shapely.box(-50, -50, 100, 100), name="Mall", kind="venue", level=None,
                presence={"enter_debounce_s": 0, "exit_debounce_s": 0})
    create_zone(client, "mall", STORE, name="Store")
    create_zone(client, "mall", shapely.box(2, 2, 10, 10), name="Shoes", kind="department")
    device, auth = register(client)
    events = post(client, device, auth, [fix(6, 6, 0)]).json()["events"]
    assert sorted(kinds(events)) == [("enter", "Mall"), ("enter", "Shoes"), ("enter", "Store")]


def test_zone_edits_apply_to_the_next_fix(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    assert kinds(post(client, device, auth, [fix(10, 10, 0)]).json()["events"]) == [("enter", "Books")]
    client.patch(f"/v1/venues/mall/zones/{mall['id']}", json={"active": False})
    events = post(client, device, auth, [fix(10, 10, 5)]).json()["events"]
    assert [(e["kind"], e["reason"]) for e in events] == [("exit", "zone_removed")]
    new = create_zone(client, "mall", shapely.box(30, 0, 50, 20), name="Games")
    events = post(client, device, auth, [fix(40, 10, 10)]).json()["events"]
    assert [e["zone"]["id"] for e in events] == [new["id"]]


@pytest.mark.parametrize(
    ("make", "status", "words"),
    [
        (lambda: {"fixes": [fix(0, 0, 0) | {"lat": "north"}]}, 422, "valid number"),
        (lambda: {"fixes": [fix(0, 0, 0) | {"lat": 91}]}, 422, "less than or equal to 90"),
        (lambda: {"fixes": [fix(0, 0, 0) | {"accuracy_m": -1}]}, 422, "greater than 0"),
        (lambda: {"fixes": [fix(0, 0, 0) | {"ts": "2026-01-01T10:00:00"}]}, 422, "timezone"),
        (lambda: {"fixes": []}, 422, "at least 1"),
        (lambda: {"fixes": [fix(0, 0, 0)], "extra": 1}, 422, "extra"),
        (lambda: {"fixes": [fix(0, 0, 0) | {"ts": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}]},
         422, "in the future"),
        (lambda: {"fixes": [fix(0, 0, 0), fix(90_000, 0, 1)]}, 422, "km from venue"),
        (lambda: {"fixes": [fix(0, 0, i) for i in range(501)]}, 422, "more than the limit of 500"),
    ],
)
def test_bad_batches_are_refused_whole(client: TestClient, mall: dict, make, status: int, words: str) -> None:
    device, auth = register(client)
    r = client.post(f"/v1/devices/{device}/positions", json=make(), headers=auth)
    assert r.status_code == status, r.text
    assert words in r.text
    assert client.get(f"/v1/devices/{device}/events", headers=auth).json() == []
    # nothing of the refused batch was applied: a good fix still enters
    assert len(post(client, device, auth, [fix(10, 10, 3000)]).json()["events"]) == 1


def test_refusal_names_the_fix(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = post(client, device, auth, [fix(0, 0, 0), fix(90_000, 0, 1)])
    assert r.json()["detail"][0]["loc"] == ["fixes", 1]


def test_device_auth(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    _other, other_auth = register(client)
    assert post(client, device, {}, [fix(0, 0, 0)]).status_code == 401
    assert post(client, device, other_auth, [fix(0, 0, 0)]).status_code == 401
    assert post(client, "no-such-device", auth, [fix(0, 0, 0)]).status_code == 404
    assert client.get(f"/v1/devices/{device}/events", headers=other_auth).status_code == 401
    r = client.post("/v1/devices", json={"venue": "nowhere", "platform": "ios"})
    assert r.status_code == 404 and "nowhere" in r.text
    r = client.post("/v1/devices", json={"venue": "mall", "platform": "blackberry"})
    assert r.status_code == 422 and "platform" in r.text


def test_malformed_json(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = client.post(f"/v1/devices/{device}/positions", content=b'{"fixes": [', headers=auth | {
        "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_silent_device_is_exited_by_the_sweep(client: TestClient, mall: dict) -> None:
    from mallfence.tracking.service import expire_silent

    rt = client.app.state.runtime
    rt.settings.presence_timeout_s = 0.05
    device, auth = register(client)
    post(client, device, auth, [fix(10, 10, 0)])
    time.sleep(0.1)  # silent for longer than the timeout
    assert expire_silent(rt) == 1
    assert expire_silent(rt) == 0  # nothing left open
    last = client.get(f"/v1/devices/{device}/events", headers=auth).json()[-1]
    assert (last["kind"], last["reason"], last["zone"]["name"]) == ("exit", "timeout", "Books")
    # the next fix inside is a new visit
    assert kinds(post(client, device, auth, [fix(10, 10, 60)]).json()["events"]) == [("enter", "Books")]


def test_sweep_forgets_unconfirmed_transitions(client: TestClient) -> None:
    from mallfence.tracking.service import expire_silent

    create_venue(client)
    create_zone(client, "mall", STORE, name="Books", presence={"enter_debounce_s": 60})
    rt = client.app.state.runtime
    rt.settings.presence_timeout_s = 0.05
    device, auth = register(client)
    post(client, device, auth, [fix(10, 10, 0)])  # an enter pending, never confirmed
    time.sleep(0.1)
    assert rt.states.silent_since(0.05) == [device]
    assert expire_silent(rt) == 0  # nothing was open: no exit event
    assert rt.states.silent_since(0.05) == []  # and the device is not looked at again
