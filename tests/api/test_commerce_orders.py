"""Click-and-collect: orders from the operator API and the signed webhook, the status machine, arrivals at the
pickup point (staff alerted with the customer card), collection only after staff scanned the shopper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from mallfence.db import transaction
from mallfence.tracking.models import Event
from tests.commerce_factories import build_mall, commerce_secret, hire, post_signed, product, scan_shopper, stock
from tests.factories import fix, register


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    device, auth = register(client)
    shopper = client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L-1001",
                                                                "display_name": "Maja"}).json()
    return {**ids, "device": device, "auth": auth, "shopper": shopper["id"]}


def place(client: TestClient, mall: dict, external_id: str = "WEB-1", **fields: object):  # type: ignore[no-untyped-def]
    body = {"external_id": external_id, "loyalty_id": "L-1001", "store_id": mall["books"],
            "items": [{"sku": "BK-1", "qty": 2, "name": "Harbour Tales"}], **fields}
    return client.post("/v1/venues/mall/orders", json=body)


def test_an_order_goes_placed_ready_collected_and_never_back(client: TestClient, mall: dict) -> None:
    r = place(client, mall, ready_by="2026-12-24T12:00:00+01:00")
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["status"], order["shopper"]["id"], order["store"]["id"], order["created"]) == (
        "placed", mall["shopper"], mall["books"], True)
    assert order["pickup_zone"]["id"] == mall["books_zone"]  # default: the store's own zone
    assert order["ready_at"] is None and order["items"] == [{"sku": "BK-1", "qty": 2, "name": "Harbour Tales"}]
    again = place(client, mall, ready_by="2026-12-24T12:00:00+01:00")  # the commerce system resends
    assert again.status_code == 200 and again.json()["changed"] is False
    r = client.patch(f"/v1/venues/mall/orders/{order['id']}", json={"status": "ready"})
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["ready_at"] is not None
    r = place(client, mall, status="placed")
    assert r.status_code == 409 and "'WEB-1' is ready: status cannot go back to placed" in r.json()["detail"]
    r = place(client, mall, status="collected")
    assert r.status_code == 200 and r.json()["collected_at"] is not None and r.json()["wait_s"] is None
    r = client.patch(f"/v1/venues/mall/orders/{order['id']}", json={"status": "ready"})
    assert r.status_code == 409 and "already collected: it cannot become ready" in r.json()["detail"]
    assert [o["status"] for o in client.get("/v1/venues/mall/orders", params={"status": "collected"}).json()] == [
        "collected"]


def test_an_order_cannot_skip_ready_or_change_hands(client: TestClient, mall: dict) -> None:
    order = place(client, mall, pickup_zone="L0-PU-A").json()
    assert order["pickup_zone"]["name"] == "Pickup point A"
    r = client.patch(f"/v1/venues/mall/orders/{order['id']}", json={"status": "collected"})
    assert r.status_code == 409 and "must be ready before it is collected" in r.json()["detail"]
    r = place(client, mall, store_id=mall["shoes"])
    assert r.status_code == 409 and "store never changes" in r.json()["detail"]
    assert client.patch(f"/v1/venues/mall/orders/{order['id']}", json={"status": "cancelled"}).status_code == 200
    r = place(client, mall, status="ready")
    assert r.status_code == 409 and "already cancelled" in r.json()["detail"]
    assert client.get(f"/v1/venues/mall/orders/{order['id']}").json()["cancelled_at"] is not None


@pytest.mark.parametrize(("fields", "loc", "says"), [
    ({"loyalty_id": "L-404"}, ["loyalty_id"], "no shopper with loyalty_id 'L-404'"),
    ({"loyalty_id": None, "shopper_id": "nope"}, ["shopper_id"], "no shopper 'nope'"),
    ({"shopper_id": "x"}, ["body"], "exactly one of shopper_id or loyalty_id"),
    ({"store_id": 999}, ["store_id"], "store 999 does not exist"),
    ({"store_id": None, "store": "L9-X"}, ["store"], "no store whose zone has external_id 'L9-X'"),
    ({"pickup_zone_id": 999}, ["pickup_zone_id"], "zone 999 does not exist"),
    ({"status": "collected"}, ["status"], "a new order starts placed or ready"),
    ({"status": "lost"}, ["body", "status"], "Input should be"),
    ({"items": [{"sku": "BK-1", "qty": 0}]}, ["body", "items", 0, "qty"], "greater than or equal to 1"),
])
def test_bad_orders_are_refused_and_nothing_is_stored(client: TestClient, mall: dict, fields: dict, loc: list,
                                                      says: str) -> None:
    r = place(client, mall, **fields)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc and says in r.json()["detail"][0]["msg"], r.text
    assert client.get("/v1/venues/mall/orders").json() == []


def test_the_commerce_system_sends_orders_signed(client: TestClient, mall: dict) -> None:
    secret = commerce_secret(client)
    body = {"external_id": "WEB-9", "shopper_id": mall["shopper"], "store": "L0-BOOKS", "pickup_zone": "L0-PU-A",
            "status": "ready", "items": [{"sku": "BK-1", "qty": 1}]}
    r = post_signed(client, secret, "orders", body, delivery="ord-1")
    assert r.status_code == 201 and r.json()["status"] == "ready" and r.json()["ready_at"] is not None, r.text
    assert post_signed(client, secret, "orders", body, delivery="ord-1").json() == r.json()  # a resend
    r = post_signed(client, secret, "orders", {**body, "status": "placed"})
    assert r.status_code == 409 and "cannot go back to placed" in r.json()["detail"]
    r = post_signed(client, secret, "orders", {**body, "external_id": "WEB-10", "shopper_id": "ghost"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["shopper_id"]
    assert client.post("/v1/venues/mall/inbound/orders", json=body).status_code == 401  # unsigned


# -- arrival and collection ----------------------------------------------------------------------------------
def _walk_to_pickup(client: TestClient, mall: dict, start: float = 0) -> list[dict]:
    r = client.post(f"/v1/devices/{mall['device']}/positions", headers=mall["auth"], json={"fixes": [
        fix(45, 33, start), fix(33, 33, start + 5), fix(33, 33, start + 10)]})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_arrival_alerts_the_store_and_collection_needs_a_scan(client: TestClient, mall: dict) -> None:
    product(client, "BK-1", "Harbour Tales")
    product(client, "TR-2", "Trail Runner 2")
    stock(client, mall["books"], "BK-1", 2)
    assert client.put(f"/v1/devices/{mall['device']}/wishlist/TR-2", headers=mall["auth"]).status_code == 201
    ana, cy = hire(client, mall["books"]), hire(client, mall["shoes"], "Cy")
    order = place(client, mall, pickup_zone="L0-PU-A", status="ready").json()
    with client.websocket_connect("/v1/staff/stream", headers=ana["auth"]) as desk:
        assert desk.receive_json()["type"] == "hello"
        events = _walk_to_pickup(client, mall)
        assert ("enter", mall["pickup_zone"]) in [(e["kind"], e["zone"]["id"]) for e in events]
        alert = desk.receive_json()
    assert (alert["type"], alert["kind"], alert["order"]["id"]) == ("alert", "order_arrival", order["id"])
    card = alert["card"]
    assert card["shopper"]["display_name"] == "Maja" and card["store"]["id"] == mall["books"]
    assert [(o["external_id"], o["status"]) for o in card["orders"]] == [("WEB-1", "ready")]
    assert [(w["sku"], w["stock"]) for w in card["wishlist"]] == [("TR-2", None)]  # Books has no record of it
    arrived = client.get(f"/v1/venues/mall/orders/{order['id']}").json()["arrived_at"]
    assert arrived is not None

    collect = f"/v1/staff/orders/{order['id']}/collect"
    r = client.post(collect, headers=ana["auth"])
    assert r.status_code == 409 and "scan the shopper's identity code first" in r.json()["detail"]
    scan_shopper(client, cy, mall["device"], mall["auth"])  # a scan at another store does not count
    assert client.post(collect, headers=ana["auth"]).status_code == 409
    r = client.post(collect, headers=cy["auth"])
    assert r.status_code == 403 and "you work at store" in r.json()["detail"]
    card = scan_shopper(client, ana, mall["device"], mall["auth"])
    assert [o["id"] for o in card["orders"]] == [order["id"]]
    r = client.post(collect, headers=ana["auth"])
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "collected" and done["collected_by"] == ana["id"]
    assert done["wait_s"] == pytest.approx((datetime.fromisoformat(done["collected_at"])
                                            - datetime.fromisoformat(arrived)).total_seconds(), abs=0.1)
    r = client.post(collect, headers=ana["auth"])
    assert r.status_code == 409 and "already collected" in r.json()["detail"]
    assert scan_shopper(client, ana, mall["device"], mall["auth"])["orders"] == []  # nothing pending any more
    assert client.post("/v1/staff/orders/999/collect", headers=ana["auth"]).status_code == 404


def test_a_scan_from_an_earlier_visit_does_not_allow_collection(client: TestClient, mall: dict) -> None:
    ana = hire(client, mall["books"])
    order = place(client, mall, status="ready").json()
    scan_shopper(client, ana, mall["device"], mall["auth"])
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    with transaction(rt.sessions) as s:  # the scan happened 11 minutes ago (server time; device clocks vary)
        s.execute(update(Event).where(Event.kind == "staff_scan")
                  .values(recorded_at=datetime.now(UTC) - timedelta(minutes=11)))
    r = client.post(f"/v1/staff/orders/{order['id']}/collect", headers=ana["auth"])
    assert r.status_code == 409 and "in the last 10 minutes" in r.json()["detail"]


@pytest.mark.parametrize("via", ["operator", "webhook"])
def test_no_arrival_for_an_order_not_yet_ready_but_when_it_becomes_ready(client: TestClient, mall: dict,
                                                                         via: str) -> None:
    ana = hire(client, mall["books"])
    order = place(client, mall, pickup_zone="L0-PU-A").json()
    _walk_to_pickup(client, mall)  # waiting at the pickup point before the order is ready
    assert client.get(f"/v1/venues/mall/orders/{order['id']}").json()["arrived_at"] is None
    secret = commerce_secret(client)
    with client.websocket_connect("/v1/staff/stream", headers=ana["auth"]) as desk:
        assert desk.receive_json()["type"] == "hello"
        if via == "operator":
            r = client.patch(f"/v1/venues/mall/orders/{order['id']}", json={"status": "ready"})
        else:
            r = post_signed(client, secret, "orders", {"external_id": "WEB-1", "loyalty_id": "L-1001",
                                                       "store_id": mall["books"], "status": "ready"})
        assert r.status_code == 200 and r.json()["status"] == "ready"
        alert = desk.receive_json()
    assert alert["kind"] == "order_arrival" and alert["event_id"] is None and alert["order"]["id"] == order["id"]
    assert client.get(f"/v1/venues/mall/orders/{order['id']}").json()["arrived_at"] is not None  # already there
