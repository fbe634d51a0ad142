"""Wishlists: the app saves SKUs for its shopper; every device of that shopper sees them; staff see them with
the stock of their own store on the customer card."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.commerce_factories import build_mall, hire, product, scan_shopper, stock
from tests.factories import register


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    product(client, "TR-2", "Trail Runner 2", image_url="https://img.example/tr2.jpg")
    product(client, "BK-1", "Harbour Tales")
    return ids


def test_a_wishlist_belongs_to_the_shopper_not_the_device(client: TestClient, mall: dict) -> None:
    phone, phone_auth = register(client)
    tablet, tablet_auth = register(client)
    for device in (phone, tablet):
        client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L-1"})
    stock(client, mall["shoes"], "TR-2", 5)
    stock(client, mall["upstairs"], "TR-2", 0)
    r = client.put(f"/v1/devices/{phone}/wishlist/TR-2", headers=phone_auth)
    assert r.status_code == 201 and r.json()["stores_in_stock"] == 1
    assert client.put(f"/v1/devices/{phone}/wishlist/TR-2", headers=phone_auth).status_code == 200  # saved already
    assert client.put(f"/v1/devices/{tablet}/wishlist/BK-1", headers=tablet_auth).status_code == 201
    seen = client.get(f"/v1/devices/{tablet}/wishlist", headers=tablet_auth).json()
    assert [(w["sku"], w["stores_in_stock"]) for w in seen] == [("BK-1", 0), ("TR-2", 1)]  # newest first
    assert client.delete(f"/v1/devices/{tablet}/wishlist/TR-2", headers=tablet_auth).status_code == 204
    assert client.delete(f"/v1/devices/{tablet}/wishlist/TR-2", headers=tablet_auth).status_code == 204  # a retry
    assert [w["sku"] for w in client.get(f"/v1/devices/{phone}/wishlist", headers=phone_auth).json()] == ["BK-1"]
    other, other_auth = register(client)  # another shopper sees none of it
    assert client.get(f"/v1/devices/{other}/wishlist", headers=other_auth).json() == []


def test_wishlist_refusals(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    r = client.put(f"/v1/devices/{device}/wishlist/GHOST", headers=auth)
    assert r.status_code == 422 and "'GHOST' is not in this venue's catalog" in r.text
    assert client.put(f"/v1/devices/{device}/wishlist/TR-2").status_code == 401
    assert client.get(f"/v1/devices/{device}/wishlist", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get(f"/v1/devices/{device}/wishlist", headers=auth).json() == []


def test_staff_see_the_wishlist_with_their_own_stock(client: TestClient, mall: dict) -> None:
    device, auth = register(client)
    stock(client, mall["shoes"], "TR-2", 2)
    for sku in ("TR-2", "BK-1"):
        client.put(f"/v1/devices/{device}/wishlist/{sku}", headers=auth)
    card = scan_shopper(client, hire(client, mall["shoes"]), device, auth)
    assert [(w["sku"], w["stock"] and (w["stock"]["level"], w["stock"]["quantity"])) for w in card["wishlist"]] == [
        ("BK-1", None), ("TR-2", ("low", 2))]
    assert card["wishlist"][1]["image_url"] == "https://img.example/tr2.jpg"
    card = scan_shopper(client, hire(client, mall["books"], "Bo"), device, auth)
    assert [w["stock"] for w in card["wishlist"]] == [None, None]  # the bookshop holds neither
