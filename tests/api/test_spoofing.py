"""Hostile and broken apps: spoofed positions are flagged and push nothing, stale queues are dropped and counted,
a declined location consent stops ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import shapely
from fastapi.testclient import TestClient

from tests.factories import create_venue, create_zone, fix, lonlat, register

STORE = shapely.box(0, 0, 20, 20)
HALL = shapely.box(-30, -10, 150, 40)


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client)
    # No quiet hours: the tests' pushes must not depend on the time of day they run at.
    r = client.put("/v1/venues/mall/push-policy", json={"quiet_hours": None, "min_gap_s": 0,
                                                         "max_per_day": 50, "max_per_week": 200})
    assert r.status_code == 200, r.text
    hall = create_zone(client, "mall", HALL, name="Hall", kind="corridor")
    store = create_zone(client, "mall", STORE, name="Books", kind="store", external_id="u1")
    r = client.post("/v1/venues/mall/campaigns", json={
        "name": "Books", "trigger": "enter", "status": "active", "targets": {"zone_ids": [store["id"]]},
        "content": {"title": "Ten percent off atlases", "body": "Today only"}})
    assert r.status_code == 201, r.text
    return {"hall": hall, "store": store, "campaign": r.json()}


def shopper(client: TestClient) -> tuple[str, dict]:
    device, auth = register(client)
    r = client.put(f"/v1/devices/{device}/consent", headers=auth,
                   json={"location": True, "marketing": True, "analytics": True, "version": "1"})
    assert r.status_code == 200, r.text
    return device, auth


def post(client: TestClient, device: str, auth: dict, fixes: list[dict]) -> dict:
    r = client.post(f"/v1/devices/{device}/positions", json={"fixes": fixes}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def decisions(client: TestClient, device: str, auth: dict) -> list[tuple]:
    rows = client.get(f"/v1/devices/{device}/decisions", headers=auth).json()
    return [(d["sent"], d["reason"], d["detail"].get("flags")) for d in rows]


def stats(client: TestClient) -> dict[str, int]:
    r = client.get("/v1/venues/mall/ingest-stats")
    assert r.status_code == 200, r.text
    return r.json()["counters"]


def test_a_mocked_location_enters_the_store_but_gets_no_offer(client: TestClient, mall: dict) -> None:
    device, auth = shopper(client)
    body = post(client, device, auth, [fix(-10, 10, 0), fix(10, 10, 10) | {"mocked": True}])
    store_events = [e for e in body["events"] if e["zone"]["name"] == "Books"]
    assert [(e["kind"], e["flags"]) for e in store_events] == [("enter", ["mock_location"])]
    assert decisions(client, device, auth) == [(False, "suspect_location", ["mock_location"])]
    assert client.get(f"/v1/devices/{device}/notifications", headers=auth).json() == []
    assert stats(client)["fixes_flagged_mock_location"] == 1
    # an honest shopper walking the same way gets the offer
    honest, honest_auth = shopper(client)
    post(client, honest, honest_auth, [fix(-10, 10, 0), fix(10, 10, 10)])
    assert decisions(client, honest, honest_auth) == [(True, None, None)]


def test_a_jump_faster_than_anyone_walks_is_flagged_until_time_catches_up(client: TestClient, mall: dict) -> None:
    device, auth = shopper(client)
    # 120 m in 2 s (fixes good to 3 m): 57 m/s
    body = post(client, device, auth, [fix(130, 10, 0), fix(10, 10, 2)])
    assert [(e["kind"], e["zone"]["name"], e["flags"]) for e in body["events"]] == [
        ("enter", "Hall", None), ("enter", "Books", ["speed"])]
    assert decisions(client, device, auth)[0][:2] == (False, "suspect_location")
    # the jump did not become the reference: a minute after the last honest fix the shopper may be anywhere
    # in 120 m, and the next visit is trusted again
    body = post(client, device, auth, [fix(-20, 10, 60), fix(10, 10, 70)])
    assert [(e["kind"], e["flags"]) for e in body["events"] if e["zone"]["name"] == "Books"] == [
        ("exit", None), ("enter", None)]
    assert decisions(client, device, auth)[0] == (True, None, None)
    assert stats(client)["fixes_flagged_speed"] == 1


def test_gps_far_from_a_fresh_qr_scan_is_flagged(client: TestClient, mall: dict) -> None:
    code = client.post("/v1/venues/mall/qr-codes", json={"code": "HALL-W", "zone_id": mall["hall"]["id"],
                                                         "position": list(lonlat(120, 30)), "level": 0}).json()
    device, auth = shopper(client)
    r = client.post(f"/v1/devices/{device}/qr-scans", headers=auth,
                    json={"payload": code["payload"], "ts": fix(0, 0, 0)["ts"]})
    assert r.status_code == 200, r.text
    # ten seconds later GPS says 110 m away, inside the store: not impossible to run, but not where the phone is
    body = post(client, device, auth, [fix(10, 10, 10)])
    assert [(e["kind"], e["flags"]) for e in body["events"] if e["zone"]["name"] == "Books"] == [
        ("enter", ["far_from_beacons"])]
    assert decisions(client, device, auth)[0][:2] == (False, "suspect_location")
    assert stats(client)["fixes_flagged_far_from_beacons"] == 1


def test_fixes_older_than_the_replay_window_are_dropped_and_counted(client: TestClient, mall: dict) -> None:
    device, auth = shopper(client)
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    body = post(client, device, auth, [fix(-10, 10, 0) | {"ts": old}, fix(-10, 10, 0), fix(10, 10, 10)])
    assert body["accepted"] == 2 and body["dropped"] == [{"index": 0, "reason": "too_old"}]
    assert [e["kind"] for e in body["events"] if e["zone"]["name"] == "Books"] == ["enter"]
    assert stats(client)["fixes_too_old"] == 1


def test_a_declined_location_consent_stops_ingest(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    client.put(f"/v1/devices/{device}/consent", headers=auth,
               json={"location": False, "marketing": True, "analytics": True, "version": "1"})
    r = client.post(f"/v1/devices/{device}/positions", json={"fixes": [fix(10, 10, 0)]}, headers=auth)
    assert r.status_code == 403 and "declined location tracking" in r.json()["detail"]
    assert client.get(f"/v1/devices/{device}/events", headers=auth).json() == []
    client.put(f"/v1/devices/{device}/consent", headers=auth,
               json={"location": True, "marketing": True, "analytics": True, "version": "1"})
    assert post(client, device, auth, [fix(10, 10, 5)])["events"]


def test_ingest_stats_are_per_venue(client: TestClient, mall: dict) -> None:
    create_venue(client, slug="other")
    device, auth = shopper(client)
    post(client, device, auth, [fix(10, 10, 0) | {"mocked": True}])
    r = client.get("/v1/venues/other/ingest-stats")
    assert r.status_code == 200 and r.json()["counters"] == {}


def test_a_device_rotates_its_token_and_the_old_one_dies(client: TestClient, mall: dict) -> None:
    device, auth = shopper(client)
    r = client.post(f"/v1/devices/{device}/token", headers=auth)
    assert r.status_code == 200 and r.json()["device_id"] == device and r.json()["venue"] == "mall"
    fresh = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.post(f"/v1/devices/{device}/positions", headers=auth,
                       json={"fixes": [fix(10, 10, 0)]}).status_code == 401
    assert post(client, device, fresh, [fix(10, 10, 0)])["events"]
