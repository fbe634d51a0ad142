"""Commerce pushes through the decision engine: wishlist stock and ready orders under the one budget, and offers
naming products held back where those products are out."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.auth import app_key
from tests.commerce_factories import build_mall, commerce_secret, product, signed, stock
from tests.factories import START, fix

OPEN = {"max_per_day": 5, "max_per_week": 20, "min_gap_s": 0, "quiet_hours": None}


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    client.put("/v1/venues/mall/push-policy", json=OPEN)
    r = client.post("/v1/devices", json={"venue": "mall", "platform": "stub"}, headers=app_key(client, "mall"))
    device, auth = r.json()["device_id"], {"Authorization": f"Bearer {r.json()['token']}"}
    client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L-1"})
    product(client, "TR-2", "Trail Runner 2")
    stock(client, ids["shoes"], "TR-2", 12)
    return {**ids, "device": device, "auth": auth}


def consent(client: TestClient, mall: dict, marketing: bool) -> None:
    client.put(f"/v1/devices/{mall['device']}/consent", headers=mall["auth"],
               json={"location": True, "marketing": marketing, "analytics": False, "version": "1"})


def walk(client: TestClient, mall: dict, *points: tuple[float, float, float]) -> None:
    r = client.post(f"/v1/devices/{mall['device']}/positions", headers=mall["auth"],
                    json={"fixes": [fix(x, y, t) for x, y, t in points]})
    assert r.status_code == 200, r.text


def log(client: TestClient, mall: dict) -> list[tuple[str, bool, str | None]]:
    rows = client.get(f"/v1/devices/{mall['device']}/decisions", headers=mall["auth"]).json()
    return [(d["kind"], d["sent"], d["reason"]) for d in reversed(rows)]


def titles(client: TestClient, mall: dict) -> list[str]:
    return [n["body"] for n in client.get(f"/v1/devices/{mall['device']}/notifications",
                                          headers=mall["auth"]).json()]


def test_a_ready_order_and_a_wishlist_item_on_entering_the_mall(client: TestClient, mall: dict) -> None:
    consent(client, mall, marketing=False)  # neither is marketing: no marketing consent needed
    client.put(f"/v1/devices/{mall['device']}/wishlist/TR-2", headers=mall["auth"])
    client.post("/v1/venues/mall/orders", json={"external_id": "WEB-1", "loyalty_id": "L-1",
                                                "store_id": mall["books"], "pickup_zone": "L0-PU-A",
                                                "status": "ready"})
    walk(client, mall, (180, 10, 0), (140, 10, 5))
    assert sorted(log(client, mall)) == [("order_ready", True, None), ("wishlist_in_stock", True, None)]
    assert "Order WEB-1 is ready to collect at Pickup point A, Level 0" in titles(client, mall)
    # the store itself then reminds once, but only after the budget's gap
    client.put("/v1/venues/mall/push-policy", json={**OPEN, "min_gap_s": 3600})
    walk(client, mall, (70, 10, 20), (70, 12, 25))
    assert log(client, mall)[-1] == ("wishlist_reminder", False, "min_gap")


def test_a_shopper_can_turn_wishlist_alerts_off(client: TestClient, mall: dict) -> None:
    client.put(f"/v1/devices/{mall['device']}/wishlist/TR-2", headers=mall["auth"])
    client.put(f"/v1/devices/{mall['device']}/preferences", headers=mall["auth"], json={"opt_out": ["wishlist"]})
    walk(client, mall, (180, 10, 0), (140, 10, 5))
    assert log(client, mall) == [("wishlist_in_stock", False, "opted_out")]


def test_an_offer_naming_a_product_is_held_back_where_it_is_out(client: TestClient, mall: dict) -> None:
    consent(client, mall, marketing=True)
    r = client.post("/v1/venues/mall/campaigns", json={
        "name": "Runner week", "trigger": "enter", "status": "active", "skus": ["TR-2"],
        "targets": {"store_ids": [mall["shoes"], mall["books"]]},
        "content": {"title": "Trail Runner 2", "body": "20 % off this week"}})
    assert r.status_code == 201, r.text
    stock(client, mall["books"], "TR-2", 0)  # the bookshop sells them too, and is out
    walk(client, mall, (10, 10, 0), (10, 12, 5), (70, 10, 60), (70, 12, 65))
    assert [(k, s, why) for k, s, why in log(client, mall) if k == "campaign"] == [
        ("campaign", False, "out_of_stock"), ("campaign", True, None)]
    [held] = [d for d in client.get(f"/v1/devices/{mall['device']}/decisions", headers=mall["auth"]).json()
              if d["reason"] == "out_of_stock"]
    assert held["detail"]["skus"] == ["TR-2"] and held["detail"]["store_id"] == mall["books"]


def test_a_purchase_counts_towards_the_segment_at_once(client: TestClient, mall: dict) -> None:
    walk(client, mall, (180, 10, 0), (140, 10, 5))
    shopper = client.put("/v1/venues/mall/shoppers/link", json={"device_id": mall["device"], "loyalty_id": "L-1"})
    sid = shopper.json()["id"]
    assert client.get(f"/v1/venues/mall/shoppers/{sid}/segment").json()["segment"] == "new"
    secret = commerce_secret(client)
    body = json.dumps({"external_id": "R-1", "loyalty_id": "L-1", "store_id": mall["shoes"], "amount": "750.00",
                       "currency": "EUR", "purchased_at": START.isoformat(), "items": []}).encode()
    r = client.post("/v1/venues/mall/inbound/purchases", content=body,
                    headers={"content-type": "application/json", **signed(secret, body)})
    assert r.status_code == 201, r.text
    seg = client.get(f"/v1/venues/mall/shoppers/{sid}/segment").json()
    assert seg["explain"]["spent_90d"] == 750.0  # the purchase re-placed them; "new" still wins on a first visit
