"""Test data for commerce: a small two-level mall with stores and a pickup point, products, signed webhooks."""

from __future__ import annotations

import json
import time
from typing import Any

import shapely
from fastapi.testclient import TestClient
from httpx import Response

from mallfence.delivery.webhooks import sign
from tests.auth import staff_session
from tests.factories import create_venue, create_zone

# Local metres. Ground floor: Books (0..20, 0..20), Shoes (60..80, 0..20), pickup point A (30..36, 30..36);
# first floor: Ballast Shoes (10..30, 40..60). The venue outline covers them all.
OUTLINE = shapely.box(-50, -50, 150, 120)
BOOKS = shapely.box(0, 0, 20, 20)
SHOES = shapely.box(60, 0, 80, 20)
UPSTAIRS = shapely.box(10, 40, 30, 60)
PICKUP = shapely.box(30, 30, 36, 36)


def build_mall(client: TestClient) -> dict[str, Any]:
    """The mall: ids of its stores (books, shoes, upstairs) and zones."""
    create_venue(client, levels=(0, 1))
    venue = create_zone(client, "mall", OUTLINE, name="Mall", kind="venue", level=None, external_id="VENUE")
    books = create_zone(client, "mall", BOOKS, name="Books zone", external_id="L0-BOOKS",
                        store={"name": "Tideline Books"})
    shoes = create_zone(client, "mall", SHOES, name="Shoes zone", external_id="L0-SHOES",
                        store={"name": "Stride Shoes"})
    upstairs = create_zone(client, "mall", UPSTAIRS, name="Ballast zone", level=1, external_id="L1-BALLAST",
                           store={"name": "Ballast Shoes"})
    pickup = create_zone(client, "mall", PICKUP, name="Pickup point A", kind="pickup", external_id="L0-PU-A")
    return {"books": books["store"]["id"], "shoes": shoes["store"]["id"], "upstairs": upstairs["store"]["id"],
            "books_zone": books["id"], "shoes_zone": shoes["id"], "upstairs_zone": upstairs["id"],
            "pickup_zone": pickup["id"], "venue_zone": venue["id"]}


def product(client: TestClient, sku: str, name: str | None = None, slug: str = "mall", **fields: Any) -> dict:
    r = client.put(f"/v1/venues/{slug}/products/{sku}", json={"name": name or f"Product {sku}", **fields})
    assert r.status_code in (200, 201), r.text
    return r.json()


def stock(client: TestClient, store_id: int, sku: str, quantity: int, slug: str = "mall", **fields: Any) -> dict:
    r = client.put(f"/v1/venues/{slug}/stores/{store_id}/stock/{sku}", json={"quantity": quantity, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def commerce_secret(client: TestClient, slug: str = "mall") -> str:
    r = client.post(f"/v1/venues/{slug}/signing-keys/commerce")
    assert r.status_code == 201, r.text
    return r.json()["secret"]


def signed(secret: str, body: bytes, *, ts: int | None = None, delivery: str | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    headers = {"Content-Type": "application/json", "Mallfence-Timestamp": str(ts),
               "Mallfence-Signature": sign(secret, ts, body)}
    if delivery is not None:
        headers["Mallfence-Delivery"] = delivery
    return headers


def post_signed(client: TestClient, secret: str, topic: str, payload: Any, slug: str = "mall",
                delivery: str | None = None) -> Response:
    """POST a JSON body to /v1/venues/{slug}/inbound/{topic}, signed as a commerce system does it."""
    body = json.dumps(payload).encode()
    return client.post(f"/v1/venues/{slug}/inbound/{topic}", content=body,
                       headers=signed(secret, body, delivery=delivery))


def hire(client: TestClient, store_id: int, name: str = "Ana") -> dict[str, Any]:
    r = client.post("/v1/venues/mall/staff", json={"store_id": store_id, "name": name})
    assert r.status_code == 201, r.text
    member = r.json()
    member["auth"] = staff_session(client, member["token"])
    return member


def scan_shopper(client: TestClient, member: dict[str, Any], device: str, auth: dict[str, str]) -> dict[str, Any]:
    code = client.post(f"/v1/devices/{device}/identity-codes", headers=auth).json()["code"]
    r = client.post("/v1/staff/scans", json={"code": code}, headers=member["auth"])
    assert r.status_code == 200, r.text
    return r.json()
