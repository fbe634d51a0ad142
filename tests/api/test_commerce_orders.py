"""Click-and-collect: orders from the operator API and the signed webhook, and the status machine."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.commerce_factories import build_mall, commerce_secret, post_signed
from tests.factories import register


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
