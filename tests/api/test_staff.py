"""Staff: accounts, identity codes scanned once, the customer card, store alerts, and who may scan what."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import update

from mallfence.db import transaction
from mallfence.errors import DomainError
from mallfence.staff import identity
from mallfence.staff.models import IdentityCode, StaffMember
from mallfence.venues.models import Venue
from tests.auth import staff_session
from tests.factories import create_venue, create_zone, fix, register

BOOKS = shapely.box(0, 0, 20, 20)
SHOES = shapely.box(30, 0, 50, 20)


@pytest.fixture
def mall(client: TestClient) -> dict:
    create_venue(client, levels=(0, 1))
    books = create_zone(client, "mall", BOOKS, name="Books zone", store={"name": "Tideline Books"})
    shoes = create_zone(client, "mall", SHOES, name="Shoes zone", store={"name": "Stride Shoes"})
    return {"books": books["store"]["id"], "shoes": shoes["store"]["id"], "books_zone": books["id"]}


def hire(client: TestClient, store_id: int, name: str = "Ana", slug: str = "mall", **kw: object) -> dict:
    r = client.post(f"/v1/venues/{slug}/staff",
                    json={"store_id": store_id, "name": name, **kw})
    assert r.status_code == 201, r.text
    member = r.json()
    member["auth"] = staff_session(client, member["token"])  # the app logs its credential in for a session
    member["session"] = member["auth"]["Authorization"].removeprefix("Bearer ")
    return member


def code_for(client: TestClient, device: str, auth: dict, **body: object) -> str:
    r = client.post(f"/v1/devices/{device}/identity-codes", json=body or None, headers=auth)
    assert r.status_code == 201, r.text
    assert 30 <= r.json()["refresh_after_s"] < 60
    return r.json()["code"]


def staff_scan(client: TestClient, member: dict, code: str):
    return client.post("/v1/staff/scans", json={"code": code}, headers=member["auth"])


# -- accounts --------------------------------------------------------------------------------------------
def test_staff_accounts_and_their_tokens(client: TestClient, mall: dict) -> None:
    ana = hire(client, mall["books"], role="manager")
    assert ana["token"].startswith("mfs_") and ana["store"]["name"] == "Tideline Books" and ana["role"] == "manager"
    me = client.get("/v1/staff/me", headers=ana["auth"])
    assert me.status_code == 200 and me.json()["id"] == ana["id"] and "token" not in me.json()
    assert [m["name"] for m in client.get("/v1/venues/mall/staff", params={"store_id": mall["books"]}).json()] == [
        "Ana"]
    assert client.get("/v1/staff/me", headers={"Authorization": ""}).status_code == 401
    assert client.post("/v1/staff/login", json={"credential": "mfs_nope"}).status_code == 401
    # the credential itself does not open staff endpoints: only a session does
    r = client.get("/v1/staff/me", headers={"Authorization": f"Bearer {ana['token']}"})
    assert r.status_code == 401 and "logs in first" in r.json()["detail"]
    fresh = client.post(f"/v1/venues/mall/staff/{ana['id']}/token").json()["token"]
    assert client.get("/v1/staff/me", headers=ana["auth"]).status_code == 401  # the lost phone's session ends
    assert client.post("/v1/staff/login", json={"credential": ana["token"]}).status_code == 401
    session = staff_session(client, fresh)
    assert client.get("/v1/staff/me", headers=session).status_code == 200
    client.patch(f"/v1/venues/mall/staff/{ana['id']}", json={"active": False})
    r = client.get("/v1/staff/me", headers=session)
    assert r.status_code == 403 and "switched off" in r.json()["detail"]
    assert client.post("/v1/staff/login", json={"credential": fresh}).status_code == 403
    assert client.delete(f"/v1/venues/mall/staff/{ana['id']}").status_code == 204
    assert client.get(f"/v1/venues/mall/staff/{ana['id']}").status_code == 404


def test_staff_of_a_store_elsewhere_cannot_be_created(client: TestClient, mall: dict) -> None:
    create_venue(client, "other")
    r = client.post("/v1/venues/other/staff", json={"store_id": mall["books"], "name": "Eve"})
    assert r.status_code == 422 and "does not exist in venue 'other'" in r.text
    r = client.post("/v1/venues/mall/staff", json={"store_id": mall["books"], "name": "Eve", "role": "owner"})
    assert r.status_code == 422


# -- the card ---------------------------------------------------------------------------------------------
def test_scanning_a_shopper_shows_their_card(client: TestClient, mall: dict) -> None:
    ana = hire(client, mall["books"])
    device, auth = register(client)
    assert client.put(f"/v1/devices/{device}/consent", headers=auth, json={
        "location": True, "marketing": False, "analytics": True, "version": "2026-11"}).status_code == 200
    linked = client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L-1001",
                                                               "display_name": "Maja"}).json()
    # earlier (23 h ago, within the replay window): an hour in the shoe store; now: walking into the bookshop
    yesterday = (datetime.now(UTC) - timedelta(hours=23)).replace(microsecond=0)
    client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [
        fix(40, 10, 0, start=yesterday), fix(40, 10, 3600, start=yesterday), fix(60, 30, 3700, start=yesterday)]})
    client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(-5, 5, 0)]})
    with client.websocket_connect(f"/v1/devices/{device}/stream", headers=auth) as app_ws:
        assert app_ws.receive_json()["type"] == "hello"
        r = staff_scan(client, ana, code_for(client, device, auth))
        assert r.status_code == 200, r.text
        seen = [app_ws.receive_json() for _ in range(2)]  # the shopper's app is told, too
    card = r.json()
    assert card["shopper"] == {"id": linked["id"], "loyalty_id": "L-1001", "display_name": "Maja"}
    assert card["device"]["id"] == device and card["store"]["name"] == "Tideline Books"
    consent = card["consent"]
    assert (consent["location"], consent["marketing"], consent["analytics"], consent["version"]) == (
        True, False, True, "2026-11")
    assert [z["name"] for z in card["here_now"]] == ["Books zone"]  # the scan put them in the store
    visits = {(v["zone"]["name"], v["duration_s"]) for v in card["recent_visits"]}
    assert ("Shoes zone", 3700.0) in visits and ("Books zone", None) in visits
    events = client.get(f"/v1/devices/{device}/events", headers=auth).json()
    london = ZoneInfo("Europe/London")  # the venue's timezone decides which day a visit belongs to
    assert card["visits"]["days"] == len({datetime.fromisoformat(e["at"]).astimezone(london).date() for e in events})
    assert card["wishlist"] == [] and card["orders"] == []
    assert [(m["type"], m.get("kind")) for m in seen] == [("event", "staff_scan"), ("event", "enter")]
    scan = next(e for e in events if e["kind"] == "staff_scan")
    assert scan["id"] == card["scan_id"] and scan["source"] == "staff"
    assert scan["data"] == {"staff_id": ana["id"], "staff_name": "Ana", "store_id": mall["books"],
                            "store_name": "Tideline Books"}
    recent = client.get("/v1/staff/scans", headers=ana["auth"]).json()
    assert [(s["id"], s["shopper_id"]) for s in recent] == [(card["scan_id"], linked["id"])]


def test_a_card_has_no_consent_until_the_app_reports_it(client: TestClient, mall: dict) -> None:
    ana = hire(client, mall["books"])
    device, auth = register(client)
    card = staff_scan(client, ana, code_for(client, device, auth)).json()
    assert card["consent"] is None and card["shopper"]["loyalty_id"] is None
    assert card["visits"]["days"] == 1  # the scan itself is a visit


def test_two_installs_of_one_loyalty_member_share_a_history(client: TestClient, mall: dict) -> None:
    phone, phone_auth = register(client)
    tablet, tablet_auth = register(client)
    first = client.put("/v1/venues/mall/shoppers/link", json={"device_id": phone, "loyalty_id": "L-7"}).json()
    client.post(f"/v1/devices/{phone}/positions", headers=phone_auth, json={"fixes": [fix(40, 10, 0)]})
    second = client.put("/v1/venues/mall/shoppers/link", json={"device_id": tablet, "loyalty_id": "L-7"}).json()
    assert second["id"] == first["id"] and set(second["devices"]) == {phone, tablet}
    card = staff_scan(client, hire(client, mall["books"]), code_for(client, tablet, tablet_auth)).json()
    assert "Shoes zone" in [v["zone"]["name"] for v in card["recent_visits"]]  # seen on the phone
    r = client.put("/v1/venues/mall/shoppers/link", json={"device_id": "nope", "loyalty_id": "L-7"})
    assert r.status_code == 404


# -- who may scan what -------------------------------------------------------------------------------------
def test_a_code_scans_once(client: TestClient, mall: dict) -> None:
    ana, bo = hire(client, mall["books"]), hire(client, mall["books"], "Bo")
    device, auth = register(client)
    code = code_for(client, device, auth)
    assert staff_scan(client, ana, code).status_code == 200
    again = staff_scan(client, bo, code)
    assert again.status_code == 410 and "already scanned" in again.json()["detail"]
    assert staff_scan(client, bo, code_for(client, device, auth)).status_code == 200  # a fresh code works


def test_an_expired_code_is_refused(client: TestClient, mall: dict) -> None:
    ana = hire(client, mall["books"])
    device, auth = register(client)
    code = code_for(client, device, auth)
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with transaction(rt.sessions) as s:
        s.execute(update(IdentityCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=5)))
    r = staff_scan(client, ana, code)
    assert r.status_code == 410 and "expired" in r.json()["detail"]


def test_a_code_shown_for_one_store_is_refused_by_another(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    code = code_for(client, device, auth, store_id=mall["books"])
    r = staff_scan(client, hire(client, mall["shoes"], "Cy"), code)
    assert r.status_code == 403 and f"for store {mall['books']}" in r.json()["detail"]
    assert staff_scan(client, hire(client, mall["books"], "Di"), code).status_code == 200


def test_staff_of_another_venue_cannot_scan(client: TestClient, mall: dict) -> None:
    create_venue(client, "other")
    zone = create_zone(client, "other", BOOKS, store={"name": "Elsewhere"})
    eve = hire(client, zone["store"]["id"], "Eve", slug="other")
    device, auth = register(client)
    r = staff_scan(client, eve, code_for(client, device, auth))
    assert r.status_code == 403 and "for venue 'mall'" in r.json()["detail"]


@pytest.mark.parametrize(("mangle", "status", "says"), [
    (lambda c: c[:-4], 422, "truncated"),
    (lambda c: c.replace("mfid1.", "mfid2."), 422, "not a shopper identity code"),
    (lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"), 422, "signature does not match"),
    (lambda c: ".".join([*c.split(".")[:2], "x" * 16, *c.split(".")[3:]]), 422, "signature does not match"),
])
def test_damaged_or_forged_codes(client: TestClient, mall: dict, mangle, status: int, says: str) -> None:  # type: ignore[no-untyped-def]
    device, auth = register(client)
    r = staff_scan(client, hire(client, mall["books"]), mangle(code_for(client, device, auth)))
    assert r.status_code == status and says in r.text, r.text


def test_identity_code_for_a_store_of_another_venue_is_refused(client: TestClient, mall: dict) -> None:
    create_venue(client, "other")
    zone = create_zone(client, "other", BOOKS, store={"name": "Elsewhere"})
    device, auth = register(client)
    r = client.post(f"/v1/devices/{device}/identity-codes", json={"store_id": zone["store"]["id"]}, headers=auth)
    assert r.status_code == 422 and "does not exist in venue 'mall'" in r.text


def test_two_staff_scanning_one_code_at_once_one_wins(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    code = code_for(client, device, auth)
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    ids = [hire(client, mall["books"], f"S{i}")["id"] for i in range(4)]
    barrier, results = threading.Barrier(len(ids)), []

    def redeem(staff_id: int) -> None:
        with rt.sessions() as s, s.begin():
            member, venue = s.get(StaffMember, staff_id), s.get(Venue, 1)
            barrier.wait()
            try:
                identity.redeem(s, staff=member, venue=venue, text=code)  # type: ignore[arg-type]
                results.append("ok")
            except DomainError as exc:
                results.append(exc.status_code)

    threads = [threading.Thread(target=redeem, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=str) == [410, 410, 410, "ok"]


# -- the store's alert stream ------------------------------------------------------------------------------
def test_colleagues_see_the_scan_on_the_store_stream(client: TestClient, mall: dict) -> None:
    ana, bo = hire(client, mall["books"]), hire(client, mall["books"], "Bo")
    cy = hire(client, mall["shoes"], "Cy")
    device, auth = register(client)
    with client.websocket_connect(f"/v1/staff/stream?token={bo['session']}") as books, \
            client.websocket_connect("/v1/staff/stream", headers=cy["auth"]) as shoes:
        assert books.receive_json() == {"type": "hello", "staff_id": bo["id"], "store_id": mall["books"],
                                        "venue": "mall"}
        assert shoes.receive_json()["store_id"] == mall["shoes"]
        card = staff_scan(client, ana, code_for(client, device, auth)).json()
        alert = books.receive_json()
        assert (alert["type"], alert["kind"], alert["scan_id"], alert["staff_name"]) == (
            "alert", "shopper_identified", card["scan_id"], "Ana")
        shoes.send_json({"type": "ping"})
        assert shoes.receive_json() == {"type": "pong"}  # nothing for the shoe store came before it
        books.send_text("hello?")
        assert books.receive_json()["type"] == "error"


def test_the_staff_stream_refuses_a_bad_token(client: TestClient, mall: dict) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/v1/staff/stream?token=mfs_x") as ws:
        ws.receive_json()
    assert exc.value.code == 4401


def test_a_scan_does_not_make_the_next_fixes_of_a_late_clock_stale(client: TestClient, mall: dict) -> None:
    """Presence runs on the device's clock; this one is an hour behind the server's. The staff scan is
    dated on the device's clock as its fixes tell it, so the fix it sends right after still counts."""
    device, auth = register(client)
    client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(-5, 5, 0)]})
    card = staff_scan(client, hire(client, mall["books"]), code_for(client, device, auth)).json()
    assert [z["name"] for z in card["here_now"]] == ["Books zone"]
    r = client.post(f"/v1/devices/{device}/positions", headers=auth, json={"fixes": [fix(10, 10, 5)]})
    assert r.json()["accepted"] == 1 and r.json()["dropped"] == []
    scan = next(e for e in client.get(f"/v1/devices/{device}/events", headers=auth).json()
                if e["kind"] == "staff_scan")
    assert abs((datetime.fromisoformat(scan["at"]) - datetime.fromisoformat(fix(-5, 5, 0)["ts"])).total_seconds()) < 5
