"""QR codes: definitions, signed payloads, scans as ground truth, and every way a payload is refused."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from fastapi.testclient import TestClient

from tests.factories import create_venue, create_zone, fix, lonlat, register

STORE = shapely.box(0, 0, 20, 20)
HALL = shapely.box(-30, -10, 50, 40)


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client, levels=(0, 1))
    hall = create_zone(client, "mall", HALL, name="Hall", kind="corridor", level=0)
    # a store with real debounces: a scan must enter it at once all the same
    store = create_zone(client, "mall", STORE, name="Books", external_id="u1",
                        presence={"enter_debounce_s": 30, "exit_debounce_s": 30},
                        store={"name": "Tideline Books", "category": "books"})
    return {"hall": hall, "store": store}


def make_code(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/venues/mall/qr-codes", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def scan_qr(client: TestClient, device: str, auth: dict, payload: str, **kw: object):
    return client.post(f"/v1/devices/{device}/qr-scans", json={"payload": payload, **kw}, headers=auth)


def test_a_shelf_code_scanned_puts_the_shopper_in_the_store_at_once(client: TestClient, mall: dict) -> None:
    code = make_code(client, code="SHELF-ATLAS", store_id=mall["store"]["store"]["id"], sku="TB-978874",
                     label="Harbour atlas shelf")
    assert code["target"] == "shelf" and code["payload"].startswith("mfq1.mall.SHELF-ATLAS.k1.")
    device, auth = register(client)
    r = scan_qr(client, device, auth, code["payload"], ts=fix(0, 0, 0)["ts"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"]["sku"] == "TB-978874" and body["target"]["store_name"] == "Tideline Books"
    assert body["target"]["zone"]["id"] == mall["store"]["id"] and body["floor"] == 0
    kinds = [(e["kind"], e["zone"]["name"], e["source"]) for e in body["events"]]
    # the scan first, then the zones it proves: the store despite its 30 s debounce, and the hall around it
    assert kinds[0] == ("qr_scan", "Books", "qr")
    assert sorted(kinds[1:]) == [("enter", "Books", "qr"), ("enter", "Hall", "qr")]
    assert body["events"][0]["data"] == {"code": "SHELF-ATLAS", "label": "Harbour atlas shelf", "sku": "TB-978874",
                                         "store_id": mall["store"]["store"]["id"], "store_name": "Tideline Books"}
    listed = client.get(f"/v1/devices/{device}/events", headers=auth).json()
    assert [e["kind"] for e in listed] == [e["kind"] for e in body["events"]]
    # leaving needs the usual evidence: GPS fixes outside for 30 s
    r = client.post(f"/v1/devices/{device}/positions", headers=auth,
                    json={"fixes": [fix(-20, 10, t) for t in (5, 20, 40)]})
    assert [(e["kind"], e["zone"]["name"]) for e in r.json()["events"] if e["zone"]["name"] == "Books"] == [
        ("exit", "Books")]


def test_a_scan_pins_the_floor_for_floorless_fixes(client: TestClient, mall: dict) -> None:
    upstairs = create_zone(client, "mall", shapely.box(60, 0, 80, 20), name="Cinema", level=1)
    code = make_code(client, zone_id=upstairs["id"])
    device, auth = register(client)
    assert [e["kind"] for e in scan_qr(client, device, auth, code["payload"], ts=fix(0, 0, 0)["ts"])
            .json()["events"]] == ["qr_scan", "enter"]
    # four minutes later a floorless GPS fix over the hall is still matched on level 1: out of the cinema, and
    # not into the hall below
    r = client.post(f"/v1/devices/{device}/positions", headers=auth,
                    json={"fixes": [fix(-20, 10, 240, floor=None)]})
    assert [(e["kind"], e["zone"]["name"]) for e in r.json()["events"]] == [("exit", "Cinema")]


def test_a_code_at_a_surveyed_spot_is_placed_there(client: TestClient, mall: dict) -> None:
    code = make_code(client, zone_id=mall["hall"]["id"], position=list(lonlat(-20, 30)), level=0)
    device, auth = register(client)
    events = scan_qr(client, device, auth, code["payload"]).json()["events"]
    assert [(e["kind"], e["zone"]["name"]) for e in events] == [("qr_scan", "Hall"), ("enter", "Hall")]


def test_the_printable_image_encodes_the_signed_payload(client: TestClient, mall: dict) -> None:
    import segno

    code = make_code(client, code="ENT-S", zone_id=mall["hall"]["id"])
    svg = client.get("/v1/venues/mall/qr-codes/ENT-S/image")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    expected = io.BytesIO()
    segno.make(code["payload"], error="m", micro=False).save(expected, kind="svg", scale=8, border=4)
    assert svg.content == expected.getvalue()  # the signed payload, not merely the code's name
    png = client.get("/v1/venues/mall/qr-codes/ENT-S/image", params={"format": "png", "scale": 4})
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/v1/venues/mall/qr-codes/NOPE/image").status_code == 404


def refusal(r) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    [issue] = r.json()["detail"]
    return r.status_code, issue["type"], issue["msg"]


def test_every_bad_payload_is_refused_with_its_reason(client: TestClient, mall: dict) -> None:
    code = make_code(client, code="ENT", zone_id=mall["hall"]["id"])
    payload = code["payload"]
    device, auth = register(client)
    body, _sig = payload.rsplit(".", 1)
    cases = {
        "https://example.com/x": ("qr.malformed", "not a mallfence QR code"),
        payload[: len(payload) // 2]: ("qr.truncated", "truncated or damaged"),
        payload[:-1]: ("qr.truncated", "truncated or damaged"),
        payload.replace(".ENT.", ".ENU."): ("qr.forged", "signature does not match"),
        f"{body}.{'A' * 22}": ("qr.forged", "signature does not match"),
        payload.replace(".k1.", ".k7."): ("qr.unknown_key", "does not accept"),
        payload.replace("mfq1.mall.", "mfq1.other-mall."): ("qr.other_venue", "belongs to venue 'other-mall'"),
    }
    for text, (kind, says) in cases.items():
        status, got, msg = refusal(scan_qr(client, device, auth, text))
        assert (status, got) == (422, kind), (text, msg)
        assert says in msg
    assert client.get(f"/v1/devices/{device}/events", headers=auth).json() == []


def test_a_code_signed_by_another_venue_key_is_forged(client: TestClient, mall: dict) -> None:
    make_code(client, code="ENT", zone_id=mall["hall"]["id"])
    create_venue(client, "other")
    other_zone = create_zone(client, "other", HALL, kind="corridor")
    theirs = client.post("/v1/venues/other/qr-codes", json={"code": "ENT", "zone_id": other_zone["id"]}).json()
    device, auth = register(client)
    resigned = theirs["payload"].replace("mfq1.other.", "mfq1.mall.")  # their key, our name
    assert refusal(scan_qr(client, device, auth, resigned))[1] == "qr.forged"


def test_validity_window_and_switch(client: TestClient, mall: dict) -> None:
    now = datetime.now(UTC)
    past = make_code(client, code="OLD", zone_id=mall["hall"]["id"], valid_until=(now - timedelta(days=1)).isoformat())
    soon = make_code(client, code="SOON", zone_id=mall["hall"]["id"], valid_from=(now + timedelta(days=1)).isoformat())
    device, auth = register(client)
    assert refusal(scan_qr(client, device, auth, past["payload"]))[1] == "qr.expired"
    assert refusal(scan_qr(client, device, auth, soon["payload"]))[1] == "qr.not_yet_valid"
    client.patch("/v1/venues/mall/qr-codes/OLD", json={"valid_until": None, "active": False})
    assert refusal(scan_qr(client, device, auth, past["payload"]))[1] == "qr.disabled"
    client.patch("/v1/venues/mall/qr-codes/OLD", json={"active": True})
    assert scan_qr(client, device, auth, past["payload"]).status_code == 200
    client.delete("/v1/venues/mall/qr-codes/OLD")
    assert refusal(scan_qr(client, device, auth, past["payload"]))[1] == "qr.unknown"


def test_rotating_keeps_printed_codes_until_the_old_key_is_retired(client: TestClient, mall: dict) -> None:
    printed = make_code(client, code="ENT", zone_id=mall["hall"]["id"])["payload"]
    device, auth = register(client)
    r = client.post("/v1/venues/mall/signing-keys/qr")
    assert r.status_code == 201 and r.json()["kid"] == "k2" and r.json()["signing"] is True
    reprint = client.get("/v1/venues/mall/qr-codes/ENT").json()["payload"]
    assert ".k2." in reprint and reprint != printed
    assert scan_qr(client, device, auth, printed).status_code == 200  # old key still verifies
    keys = {(k["purpose"], k["kid"]): k for k in client.get("/v1/venues/mall/signing-keys").json()}
    assert keys[("qr", "k1")]["signing"] is False and "secret" not in keys[("qr", "k1")]
    assert client.delete("/v1/venues/mall/signing-keys/qr/k1").json()["retired_at"] is not None
    assert refusal(scan_qr(client, device, auth, printed))[1] == "qr.unknown_key"
    assert scan_qr(client, device, auth, reprint).status_code == 200
    assert client.delete("/v1/venues/mall/signing-keys/qr/k9").status_code == 404


@pytest.mark.parametrize(("body", "says"), [
    ({}, "exactly one of zone_id or store_id"),
    ({"zone_id": 1, "store_id": 1}, "exactly one of zone_id or store_id"),
    ({"zone_id": 1, "sku": "X1"}, "sku needs store_id"),
    ({"zone_id": 999}, "zone 999 does not exist"),
    ({"store_id": 999}, "store 999 does not exist"),
    ({"zone_id": 1, "code": "has space"}, "String should match pattern"),
    ({"zone_id": 1, "level": 9}, "unknown level 9"),
    ({"zone_id": 1, "valid_from": "2027-01-02T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"}, "after valid_from"),
])
def test_bad_code_definitions_are_refused(client: TestClient, mall: dict, body: dict, says: str) -> None:
    r = client.post("/v1/venues/mall/qr-codes", json=body)
    assert r.status_code == 422 and says in r.text, r.text


def test_codes_in_the_file_format_import_atomically(client: TestClient, mall: dict) -> None:
    good = {"venue": "mall", "codes": [
        {"external_id": "QR-ENT", "binding": {"zone_external_id": "u1"}, "label": "Store door"},
        {"external_id": "QR-SHELF", "binding": {"store_external_id": "u1", "sku": "SKU-1"}},
    ]}
    r = client.post("/v1/venues/mall/qr-codes/import", json=good)
    assert r.json() == {"created": 2, "updated": 0, "unchanged": 0, "codes": 2}, r.text
    assert client.post("/v1/venues/mall/qr-codes/import", json=good).json()["unchanged"] == 2
    bad = {"venue": "mall", "codes": [{**good["codes"][0], "label": "Changed"},
                                      {"external_id": "QR-X", "binding": {"zone_external_id": "nope"}}]}
    r = client.post("/v1/venues/mall/qr-codes/import", json=bad)
    assert r.status_code == 422 and "nope" in r.text
    assert client.get("/v1/venues/mall/qr-codes/QR-ENT").json()["label"] == "Store door"
    other = client.post("/v1/venues/mall/qr-codes/import", json={**good, "venue": "elsewhere"})
    assert other.status_code == 422 and "for venue 'elsewhere'" in other.text


def test_qr_scans_over_the_websocket(client: TestClient, mall: dict) -> None:
    code = make_code(client, code="ENT", zone_id=mall["store"]["id"])
    device, auth = register(client)
    with client.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"type": "qr", "payload": code["payload"][:-3]})
        error = ws.receive_json()
        assert (error["type"], error["code"]) == ("error", "qr.truncated")
        ws.send_json({"type": "qr", "payload": code["payload"]})
        messages = [ws.receive_json() for _ in range(4)]
    assert {m["type"] for m in messages} == {"event", "qr_receipt"}
    assert [m["kind"] for m in messages if m["type"] == "event"] == ["qr_scan", "enter", "enter"]
