"""Black box, commerce: stub shoppers with wishlists walk the sample mall; those with a click-and-collect order
(placed and made ready through the signed commerce webhook) are scanned at the store's staff desk, which
sees the order on the card and hands it over; the server measured how long they waited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from mallfence.cli import import_file
from mallfence.config import Settings
from mallfence.server import BackgroundServer
from mobile_stub import run_shoppers
from tests.auth import bearer

ZONES = Path(__file__).parents[2] / "zones"

pytestmark = pytest.mark.scenario


def test_shoppers_collect_their_orders_at_the_staff_desk(settings: Settings, platform_key: str) -> None:
    import_file(settings, ZONES / "harbourside-mall.geojson", None)
    cards: list[tuple[str, dict[str, Any]]] = []
    collected: list[tuple[str, dict[str, Any]]] = []
    with BackgroundServer(settings) as url, httpx.Client(base_url=url, headers=bearer(platform_key),
                                                             timeout=15) as ops:
        stores = ops.get("/v1/venues/harbourside/stores").json()
        tokens = tuple(ops.post("/v1/venues/harbourside/staff",
                                  json={"store_id": st["id"], "name": f"Desk of {st['name']}"}).json()["token"]
                       for st in stores)
        summary = asyncio.run(run_shoppers(url, "harbourside", api_key=platform_key,
                                           shoppers=4, speedup=150, seed=3, staff_tokens=tokens,
                                           commerce=True, on_card=lambda s, c: cards.append((s, c)),
                                           on_order=lambda s, o: collected.append((s, o))))
        orders = ops.get("/v1/venues/harbourside/orders").json()
        keys = [k for k in ops.get("/v1/venues/harbourside/signing-keys").json() if k["purpose"] == "commerce"]
    assert summary.ok and not summary.errors, summary.format()
    assert cards and all(card["wishlist"] for _, card in cards), "every stub shopper saved something"
    assert orders and {o["status"] for o in orders} == {"collected"}, [(o["external_id"], o["status"]) for o in orders]
    assert sorted(o["id"] for _, o in collected) == sorted(o["id"] for o in orders)
    for shopper, order in collected:
        assert order["external_id"].startswith(f"STUB-3-{shopper}-") and order["collected_by"] is not None
        assert order["arrived_at"] is not None and order["wait_s"] is not None and order["wait_s"] >= 0
        seen = [c for s, c in cards if s == shopper and c["store"]["id"] == order["store"]["id"]]
        assert any(o["id"] == order["id"] and o["status"] == "ready" for c in seen for o in c["orders"])
    assert [k["retired_at"] is not None for k in keys] == [True], "the run retires the key it made"
