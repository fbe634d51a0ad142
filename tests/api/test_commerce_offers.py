"""Push candidates from commerce (``commerce.offers.candidates``): what entering the venue or a store proposes
to the decision engine for a shopper's wishlist and ready orders, and dedupe keys that survive a replay."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from mallfence.commerce import offers
from mallfence.engagement.candidates import CATEGORIES, PushCandidate
from tests.commerce_factories import build_mall, product, stock
from tests.factories import fix, register


@pytest.fixture
def mall(client: TestClient) -> dict:
    ids = build_mall(client)
    device, auth = register(client)
    shopper = client.put("/v1/venues/mall/shoppers/link", json={"device_id": device, "loyalty_id": "L-1"}).json()
    seen: list[tuple[str, PushCandidate]] = []  # (event kind and zone, candidate) as the engine would get them
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    rt.listeners.append(lambda batch: seen.extend(offers.candidates(batch)))  # type: ignore[arg-type]
    return {**ids, "device": device, "auth": auth, "shopper": shopper["id"], "seen": seen}


def walk(client: TestClient, mall: dict, *points: tuple[float, float, float]) -> list[dict]:
    r = client.post(f"/v1/devices/{mall['device']}/positions", headers=mall["auth"],
                    json={"fixes": [fix(x, y, t) for x, y, t in points]})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def _stocked(client: TestClient, mall: dict) -> None:
    product(client, "TR-2", "Trail Runner 2", image_url="https://img.example/tr2.jpg")
    product(client, "BK-1", "Harbour Tales")
    product(client, "SOLD-1", "Sold Out Socks")
    product(client, "NONE-1", "Carried Nowhere")
    stock(client, mall["shoes"], "TR-2", 12)
    stock(client, mall["upstairs"], "TR-2", 5)
    stock(client, mall["books"], "BK-1", 2)
    stock(client, mall["shoes"], "SOLD-1", 0)
    for sku in ("NONE-1", "SOLD-1", "BK-1", "TR-2"):
        assert client.put(f"/v1/devices/{mall['device']}/wishlist/{sku}", headers=mall["auth"]).status_code == 201


def test_entering_the_venue_proposes_wishlist_stock_and_ready_orders(client: TestClient, mall: dict) -> None:
    _stocked(client, mall)
    client.post("/v1/venues/mall/orders", json={"external_id": "WEB-1", "loyalty_id": "L-1", "store_id": mall["books"],
                                                "pickup_zone": "L0-PU-A", "status": "ready"})
    events = walk(client, mall, (180, 10, 0), (140, 10, 5))  # in through the east side, 60 m from Stride Shoes
    enter = next(e for e in events if e["kind"] == "enter")
    assert enter["zone"]["kind"] == "venue"
    day = datetime.fromisoformat(enter["at"]).astimezone(ZoneInfo("Europe/London")).date().isoformat()
    got = {c.kind: c for c in mall["seen"]}
    assert sorted(got) == ["order_ready", "wishlist_in_stock"]
    stocked = got["wishlist_in_stock"]  # two saved items in stock: one push naming both, newest save first
    assert stocked.skus == ("TR-2", "BK-1") and stocked.title == "2 items on your wishlist are in stock"
    assert stocked.body == ("Trail Runner 2 is in stock at Stride Shoes (Level 0, about 60 m); "  # nearer than upstairs
                            "Only 2 left of Harbour Tales at Tideline Books (Level 0, about 100 m)")
    assert stocked.store_id is None and stocked.category == "wishlist" and stocked.topic == "wishlist"
    assert stocked.dedupe_key == f"wishlist-in-stock:{mall['shopper']}:{day}:BK-1+TR-2"
    assert stocked.image_url == "https://img.example/tr2.jpg" and stocked.data == {
        "type": "wishlist_in_stock", "skus": "TR-2,BK-1"}
    assert [(i["sku"], i["store_id"], i["stock_level"]) for i in stocked.explain["items"]] == [  # type: ignore[union-attr]
        ("TR-2", mall["shoes"], "in_stock"), ("BK-1", mall["books"], "low")]
    ready = got["order_ready"]
    assert (ready.category, ready.topic, ready.skus) == ("service", None, ())
    assert ready.body == "Order WEB-1 is ready to collect at Pickup point A, Level 0"
    assert ready.dedupe_key.startswith("order-ready:") and ready.dedupe_key.endswith(f":{day}")
    assert ready.priority > stocked.priority
    assert all(c.category in CATEGORIES and all(isinstance(v, str) for v in c.data.values()) for c in mall["seen"])


def test_entering_a_store_reminds_of_what_it_has(client: TestClient, mall: dict) -> None:
    _stocked(client, mall)
    walk(client, mall, (180, 10, 0), (140, 10, 5))
    mall["seen"].clear()
    events = walk(client, mall, (70, 10, 20), (70, 12, 25))
    assert ("enter", "Shoes zone") in [(e["kind"], e["zone"]["name"]) for e in events]
    assert [(c.kind, c.skus, c.store_id) for c in mall["seen"]] == [("wishlist_reminder", ("TR-2",), mall["shoes"])]
    reminder = mall["seen"][0]
    assert reminder.body == "Trail Runner 2 is in stock here at Stride Shoes: it is on your wishlist"
    assert reminder.dedupe_key.startswith(f"wishlist-reminder:{mall['shopper']}:TR-2:{mall['shoes']}:")


def test_coming_back_the_same_day_gives_the_same_dedupe_keys(client: TestClient, mall: dict) -> None:
    _stocked(client, mall)
    walk(client, mall, (180, 10, 0), (140, 10, 5))
    first = sorted(c.dedupe_key for c in mall["seen"])
    mall["seen"].clear()
    walk(client, mall, (180, 10, 60), (220, 10, 65), (140, 10, 600))  # out, and back ten minutes later
    assert sorted(c.dedupe_key for c in mall["seen"]) == first and first


def test_nothing_to_propose_without_a_wishlist_or_orders(client: TestClient, mall: dict) -> None:
    walk(client, mall, (180, 10, 0), (140, 10, 5), (70, 10, 20), (70, 12, 25))
    assert mall["seen"] == []
