"""The beacon registry and beacon scans: CRUD, bulk import, positioning into presence, refusals."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from fastapi.testclient import TestClient

from tests.factories import (
    PROJ,
    UUID,
    add_beacons,
    beacon_body,
    create_venue,
    create_zone,
    fix,
    lonlat,
    register,
    scan,
)

STORE = shapely.box(0, 0, 20, 20)
# A 3 x 3 grid 15 m apart over the store and the corridor west of it, on level 0; two beacons upstairs.
GRID = [(x, y, 0) for x in (-15, 0, 15) for y in (0, 15, 30)] + [(0, 10, 1), (15, 10, 1)]


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client, levels=(0, 1))
    store = create_zone(client, "mall", STORE, name="Books", external_id="u1")
    return {"store": store, "beacons": add_beacons(client, "mall", GRID)}


def post_scans(client: TestClient, device: str, auth: dict, scans: list[dict]):
    return client.post(f"/v1/devices/{device}/beacon-scans", json={"scans": scans}, headers=auth)


def local(fix_out: dict) -> tuple[float, float]:
    x, y = PROJ.to_local([fix_out["lon"]], [fix_out["lat"]])
    return float(x[0]), float(y[0])


# -- registry --------------------------------------------------------------------------------------------
def test_register_read_change_and_delete_a_beacon(client: TestClient) -> None:
    create_venue(client, levels=(0, 1))
    zone = create_zone(client, "mall", STORE, external_id="u1")
    r = client.post("/v1/venues/mall/beacons", json=beacon_body(5, 5, 0, 7, external_id="B-7", zone_id=zone["id"]))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"] == f"ibeacon:{UUID}:1:7" and made["kind"] == "ibeacon" and made["minor"] == 7
    assert made["zone_id"] == zone["id"] and made["power_1m"] == -59.0
    # Eddystone frames calibrate at 0 m: the registry keeps the 1 m figure
    eddy = client.post("/v1/venues/mall/beacons", json={
        "namespace": "717B567915766F52C8C3", "instance": "000A00000021", "position": list(lonlat(1, 1)),
        "level": 1, "tx_power_0m": -20}).json()
    assert eddy["key"] == "eddystone:717b567915766f52c8c3:000a00000021" and eddy["power_1m"] == -61.0
    assert [b["id"] for b in client.get("/v1/venues/mall/beacons", params={"level": 1}).json()] == [eddy["id"]]
    r = client.patch(f"/v1/venues/mall/beacons/{made['id']}", json={"power_1m": -62.5, "zone_id": None, "level": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["power_1m"], r.json()["zone_id"], r.json()["level"]) == (-62.5, None, 1)
    assert client.get(f"/v1/venues/mall/beacons/{made['id']}").json()["power_1m"] == -62.5
    assert client.delete(f"/v1/venues/mall/beacons/{made['id']}").status_code == 204
    assert client.get(f"/v1/venues/mall/beacons/{made['id']}").status_code == 404


@pytest.mark.parametrize(("change", "where", "says"), [
    ({"uuid": "7b1e4f0c-5a2d-4c8e-9f3b"}, (), "32 hex digits"),  # truncated UUID
    ({"uuid": "zb1e4f0c-5a2d-4c8e-9f3b-2d6a8e1c0b54"}, (), "32 hex digits"),
    ({"major": 70000}, ("major",), "65535"),
    ({"key": "ibeacon:nope"}, (), "not a beacon key"),  # two identities and a bad key: one identity please
    ({"uuid": None, "major": None, "minor": None, "namespace": "717b", "instance": "000a00000021"}, (), "20 hex"),
    ({"uuid": None, "major": None, "minor": None}, (), "needs an identity"),
    ({"level": 3}, ("level",), "unknown level 3"),
    ({"position": [56.124, 10.159]}, ("position",), "swapped"),
    ({"tx_power_0m": -20}, (), "not both"),
    ({"zone_id": 999}, ("zone_id",), "does not exist"),
    ({"rssi": -50}, ("rssi",), "Extra inputs"),
])
def test_bad_beacons_are_refused_with_the_field_named(client: TestClient, change: dict, where: tuple,
                                                      says: str) -> None:
    create_venue(client, levels=(0,))
    body = {**beacon_body(5, 5, 0, 1), **change}
    if change.get("key"):
        body = {k: v for k, v in body.items() if k not in ("uuid", "major", "minor")}
    r = client.post("/v1/venues/mall/beacons", json=body)
    assert r.status_code == 422, r.text
    [issue] = [i for i in r.json()["detail"] if says in i["msg"]]
    assert tuple(issue["loc"][-len(where):]) == where if where else True
    assert client.get("/v1/venues/mall/beacons").json() == []


def test_the_same_beacon_twice_is_a_conflict_whatever_the_spelling(client: TestClient) -> None:
    create_venue(client, levels=(0,))
    assert client.post("/v1/venues/mall/beacons", json=beacon_body(5, 5, 0, 1)).status_code == 201
    again = {"key": f"iBeacon:{UUID.upper().replace('-', '')}:1:0001", "position": list(lonlat(9, 9)), "level": 0}
    r = client.post("/v1/venues/mall/beacons", json=again)
    assert r.status_code == 409 and "already has the identity" in r.json()["detail"]


CSV = f"""key,lon,lat,level,power_1m,zone,external_id
ibeacon:{UUID}:2:1,{",".join(map(str, lonlat(2, 2)))},0,-60,u1,B-1
ibeacon:{UUID}:2:2,{",".join(map(str, lonlat(18, 18)))},0,-61,,B-2
"""


def test_csv_import_upserts_by_identity(client: TestClient) -> None:
    create_venue(client, levels=(0, 1))
    zone = create_zone(client, "mall", STORE, external_id="u1")
    r = client.post("/v1/venues/mall/beacons/import", content=CSV, headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 2, "updated": 0, "unchanged": 0, "deleted": 0, "beacons": 2}
    listed = {b["external_id"]: b for b in client.get("/v1/venues/mall/beacons").json()}
    assert listed["B-1"]["zone_id"] == zone["id"] and listed["B-2"]["power_1m"] == -61
    moved = CSV.replace(",-61,", ",-64,")
    r = client.post("/v1/venues/mall/beacons/import", content=moved, headers={"content-type": "text/csv"})
    assert r.json() == {"created": 0, "updated": 1, "unchanged": 1, "deleted": 0, "beacons": 2}


def test_a_bad_csv_names_every_bad_line_and_changes_nothing(client: TestClient) -> None:
    create_venue(client, levels=(0,))
    create_zone(client, "mall", STORE, external_id="u1")
    client.post("/v1/venues/mall/beacons/import", content=CSV, headers={"content-type": "text/csv"})
    bad = CSV.replace(",-60,", ",-50,") + (f"ibeacon:{UUID}:2:3,{','.join(map(str, lonlat(5, 5)))},4,-60,,\n"
                                          f"ibeacon:{UUID}:2:4,east,{lonlat(5, 5)[1]},0,-60,,\n"
                                          f"ibeacon:{UUID}:2:5,{','.join(map(str, lonlat(5, 5)))},0,-60,nowhere,\n")
    r = client.post("/v1/venues/mall/beacons/import", content=bad, headers={"content-type": "text/csv"})
    assert r.status_code == 422, r.text
    assert [i["loc"][:2] for i in r.json()["detail"]] == [["csv", "line 5"]]  # numbers first: nothing else read
    bad = bad.replace(",east,", f",{lonlat(5, 5)[0]},")
    r = client.post("/v1/venues/mall/beacons/import", content=bad, headers={"content-type": "text/csv"})
    problems = {(i["loc"][0], i["loc"][-1]): i["msg"] for i in r.json()["detail"]}
    assert "unknown level 4" in problems[("line 4", "level")]
    assert "no zone with external_id 'nowhere'" in problems[("line 6", "zone")]
    assert {b["power_1m"] for b in client.get("/v1/venues/mall/beacons").json()} == {-60, -61}  # line 2 not applied


@pytest.mark.parametrize(("body", "ctype", "status", "says"), [
    ("lon,lat\n1,2\n", "text/csv", 422, "missing column(s): level"),
    ("key,lon,lat,level,colour\n", "text/csv", 422, "unknown column(s) 'colour'"),
    ("", "text/csv", 422, "empty CSV"),
    ("{not json", "application/geo+json", 422, "not JSON"),
    ('{"type": "Feature"}', "application/json", 422, "FeatureCollection"),
    ("key,lon", "application/xml", 422, "send text/csv or application/geo+json"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "LineString", '
     '"coordinates": [[0, 0], [1, 1]]}, "properties": {}}]}', "application/json", 422, "must be a GeoJSON Point"),
])
def test_import_refusals(client: TestClient, body: str, ctype: str, status: int, says: str) -> None:
    create_venue(client, levels=(0,))
    r = client.post("/v1/venues/mall/beacons/import", content=body.encode(), headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert says in r.text


def test_import_larger_than_the_limit_is_refused_before_parsing(client: TestClient) -> None:
    create_venue(client, levels=(0,))
    r = client.post("/v1/venues/mall/beacons/import", content=b"x" * (11 * 1024 * 1024),
                    headers={"content-type": "text/csv"})
    assert r.status_code == 413 and "split it" in r.json()["detail"]


def test_geojson_export_imports_back_unchanged_and_prune_removes_the_rest(client: TestClient, mall: dict) -> None:
    exported = client.get("/v1/venues/mall/beacons/export").json()
    assert len(exported["features"]) == len(GRID)
    again = client.post("/v1/venues/mall/beacons/import", json=exported).json()
    assert again == {"created": 0, "updated": 0, "unchanged": len(GRID), "deleted": 0, "beacons": len(GRID)}
    exported["features"] = exported["features"][:3]
    pruned = client.post("/v1/venues/mall/beacons/import", params={"prune": True}, json=exported).json()
    assert pruned["deleted"] == len(GRID) - 3 and pruned["beacons"] == 3


def test_a_key_that_disagrees_with_its_spelled_out_identity_is_refused(client: TestClient) -> None:
    create_venue(client, levels=(0,))
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat(1, 1))},
               "properties": {"key": f"ibeacon:{UUID}:1:1", "uuid": UUID, "major": 1, "minor": 2, "level": 0}}
    r = client.post("/v1/venues/mall/beacons/import", json={"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 422 and "disagrees" in r.text


# -- scans -------------------------------------------------------------------------------------------------
def test_a_shopper_located_by_beacons_only_enters_the_store(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    beacons = mall["beacons"]
    # walking at 1.5 m/s from the corridor to the middle of the store, then standing there for 15 s: the
    # motion track carries the walk ~2 m past the stop on this sparse grid (15 m) and settles in ~10 s
    # (before the track: no overshoot, settled in 3 s, but 3 m behind the walker all the way)
    walk = [(-12.0 + 1.5 * t, 10.0) for t in range(15)] + [(10.0, 10.0)] * 15
    scans = [scan(beacons, x, y, 0, t, scan_id=f"s{t}") for t, (x, y) in enumerate(walk)]
    r = post_scans(client, device, auth, scans)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == len(walk) and body["no_fix"] == [] and body["unknown_beacons"] == 0
    assert [f["floor"] for f in body["fixes"]] == [0] * len(walk)  # upstairs beacons heard through the slab
    last = body["fixes"][-1]
    assert math.dist(local(last), (10.0, 10.0)) < 1.0 and last["method"] == "lsq" and last["fix_id"] == "s29"
    [enter] = body["events"]
    assert (enter["kind"], enter["zone"]["name"], enter["source"]) == ("enter", "Books", "beacon")
    # the true crossing is at s8 (x = 0); the fixes trail a walker by 1-3 m (the readings' age, which the
    # track makes up for only as it learns the walk), so the enter comes a few fixes later (s11, as before)
    assert enter["fix_id"] in {f"s{t}" for t in range(8, 14)}


def test_the_floor_comes_from_the_beacons(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    body = post_scans(client, device, auth, [scan(mall["beacons"], 8, 10, 1, t) for t in range(3)]).json()
    assert {f["floor"] for f in body["fixes"]} == {1}
    assert body["events"] == []  # the store is on level 0


def test_a_gps_fix_without_a_floor_uses_the_floor_beacons_gave(client: TestClient, mall: dict) -> None:
    create_zone(client, "mall", shapely.box(-40, 40, -20, 60), name="Upstairs", level=1)
    device, auth = register(client)
    # without any beacon, a floorless fix inside the upstairs zone matches nothing
    r = client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(-30, 50, 0, floor=None)]})
    assert r.json()["events"] == []
    # beacons put the device on level 1 (outside that zone); a floorless fix 10 s later is then matched on level 1
    post_scans(client, device, auth, [scan(mall["beacons"], 5, 10, 1, 10 + t) for t in range(2)])
    r = client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(-30, 50, 20, floor=None)]})
    assert [(e["kind"], e["zone"]["name"]) for e in r.json()["events"]] == [("enter", "Upstairs")]


def test_the_floor_hint_runs_out(client: TestClient, mall: dict) -> None:
    create_zone(client, "mall", shapely.box(-40, 40, -20, 60), name="Upstairs", level=1)
    device, auth = register(client)
    post_scans(client, device, auth, [scan(mall["beacons"], 5, 10, 1, t) for t in range(2)])
    r = client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(-30, 50, 120, floor=None)]})
    assert r.json()["events"] == []  # 119 s after the last beacon fix: the 60 s hint is over


def test_unknown_beacons_are_counted_not_refused(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    body = scan(mall["beacons"], 5, 5, 0, 0)
    body["beacons"] += [{"uuid": UUID, "major": 99, "minor": 1, "rssi": -70},
                        {"namespace": "00112233445566778899", "instance": "aabbccddeeff", "rssi": -80}]
    r = post_scans(client, device, auth, [body, {**scan(mall["beacons"], 5, 6, 0, 1), "beacons": [
        {"uuid": UUID, "major": 99, "minor": 1, "rssi": -71}]}])
    assert r.status_code == 200, r.text
    assert r.json()["unknown_beacons"] == 3 and r.json()["no_fix"] == []  # the second: the smoother still knows
    unknown = client.get("/v1/venues/mall/beacons/unknown").json()
    assert [(u["key"], u["sightings"]) for u in unknown] == [
        (f"ibeacon:{UUID}:99:1", 2), ("eddystone:00112233445566778899:aabbccddeeff", 1)]


def test_a_scan_of_only_unknown_beacons_gives_no_fix(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = post_scans(client, device, auth, [{"ts": fix(0, 0, 0)["ts"], "beacons": [
        {"uuid": UUID, "major": 99, "minor": 1, "rssi": -70}]}])
    assert r.status_code == 200 and r.json()["no_fix"] == [0] and r.json()["fixes"] == []


def test_stale_scans_are_dropped(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    post_scans(client, device, auth, [scan(mall["beacons"], 5, 5, 0, 10)])
    r = post_scans(client, device, auth, [scan(mall["beacons"], 5, 5, 0, 5), scan(mall["beacons"], 5, 5, 0, 11)])
    assert r.json()["dropped"] == [{"index": 0, "reason": "stale"}] and r.json()["accepted"] == 1


def _reading(**kw: object) -> dict:
    return {"uuid": UUID, "major": 1, "minor": 1, "rssi": -60, **kw}


@pytest.mark.parametrize(("scans", "where", "says"), [
    ([{"beacons": [_reading(rssi=-121)]}], ["scans", 0, "beacons", 0, "rssi"], "greater than or equal to -120"),
    ([{"beacons": [_reading(rssi=3)]}], ["scans", 0, "beacons", 0, "rssi"], "less than or equal to 0"),
    ([{"beacons": []}], ["scans", 0, "beacons"], "at least 1"),
    ([], ["scans"], "at least 1"),
    ([{"beacons": [_reading(), {"key": f"ibeacon:{UUID.upper()}:1:1", "rssi": -61}]}], ["scans", 0],
     "listed twice"),
    ([{"beacons": [_reading(uuid="7b1e4f0c-5a2d-4c8e")]}], ["scans", 0, "beacons", 0], "32 hex digits"),
    ([{"beacons": [{"rssi": -60}]}], ["scans", 0, "beacons", 0], "needs the beacon"),
    ([{"beacons": [_reading(rssi="loud")]}], ["scans", 0, "beacons", 0, "rssi"], "valid number"),
    ([{"beacons": [_reading()], "ts": "2026-01-01T10:00:00"}], ["scans", 0, "ts"], "timezone"),
    ([{"beacons": [_reading()], "ts": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}], ["scans", 0, "ts"],
     "in the future"),
])
def test_bad_scans_are_refused_naming_the_reading(client: TestClient, mall: dict, scans: list, where: list,
                                                  says: str) -> None:
    device, auth = register(client)
    body = {"scans": [{"ts": fix(0, 0, 0)["ts"], **s} for s in scans]}
    r = client.post(f"/v1/devices/{device}/beacon-scans", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert any(i["loc"][-len(where):] == where or i["loc"][1:1 + len(where)] == where for i in r.json()["detail"]), \
        r.json()["detail"]
    assert says in r.text


def _until(ws, kind: str) -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def]
    """The next message of ``kind``, and the messages before it."""
    before = []
    while (message := ws.receive_json())["type"] != kind:
        before.append(message)
    return message, before


def test_scans_over_the_websocket_and_http_share_one_smoother(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    beacons = mall["beacons"]
    with client.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"type": "beacons", "scans": [scan(beacons, 10, 10, 0, 0), scan(beacons, 10, 10, 0, 1)]})
        receipt, events = _until(ws, "receipt")
        assert receipt["accepted"] == 2 and len(receipt["fixes"]) == 2
        assert [(e["kind"], e["source"]) for e in events] == [("enter", "beacon")]
        # this scan heard nothing registered: the readings of the websocket's scans, 1 s old, still place it
        r = post_scans(client, device, auth, [{"ts": fix(0, 0, 2)["ts"], "beacons": [
            {"uuid": UUID, "major": 99, "minor": 9, "rssi": -70}]}])
        assert r.json()["no_fix"] == [] and math.dist(local(r.json()["fixes"][0]), (10.0, 10.0)) < 1
        ws.send_json({"type": "beacons", "scans": [{"ts": fix(0, 0, 3)["ts"], "beacons": [_reading(rssi=-500)]}]})
        error, _ = _until(ws, "error")
        assert "rssi" in error["detail"]
        # walking out: the exit arrives as an event too
        ws.send_json({"type": "beacons", "scans": [scan(beacons, -14, 28, 0, t) for t in range(4, 40)]})
        receipt, events = _until(ws, "receipt")
    assert ("exit", "beacon") in [(e["kind"], e["source"]) for e in events]


def test_the_venue_path_loss_exponent_is_used(client: TestClient) -> None:
    """Scans from a hall with n = 3.5: ranges read with n = 2.5 come out short and the fix drifts."""
    create_venue(client, levels=(0,))
    beacons = add_beacons(client, "mall", [(0, 0, 0), (12, 0, 0), (0, 12, 0), (12, 12, 0)])
    device, auth = register(client)

    def error() -> float:
        r = post_scans(client, device, auth, [scan(beacons, 3, 4, 0, error.t, n=3.5)])  # type: ignore[attr-defined]
        error.t += 60  # type: ignore[attr-defined]  # past the track's memory (30 s): fixes made with the old n go
        return math.dist(local(r.json()["fixes"][0]), (3.0, 4.0))

    error.t = 0  # type: ignore[attr-defined]
    wrong = error()
    r = client.patch("/v1/venues/mall", json={"path_loss_exponent": 3.5})
    assert r.status_code == 200 and r.json()["path_loss_exponent"] == 3.5
    right = error()
    assert right < 0.5 < wrong
