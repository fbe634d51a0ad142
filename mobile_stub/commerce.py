"""Commerce for stub shoppers: a small catalog with stock, a wishlist per shopper, and click-and-collect
orders placed by the venue's commerce system (signed webhooks), made ready before the walk and handed over
at a staff desk the shopper's walk passes through, after staff scanned the shopper's code.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import shapely

from mallfence.delivery.webhooks import sign
from mobile_stub.shopper import Shopper, ShopperFailed
from mobile_stub.staff import StaffDesk, StaffError
from mobile_stub.venue import Venue
from mobile_stub.walker import Sample

# (sku, name, brand): a few things a harbourside mall sells
CATALOG = (
    ("STB-TRAIL-42", "Trail Runner 2, size 42", "Stride"), ("STB-RAIN-M", "Harbour Rain Jacket M", "Northwind"),
    ("STB-BOOK-17", "Tides of the North Sea", "Tideline"), ("STB-MUG-01", "Lighthouse Mug", "Hollow Oak"),
    ("STB-EARB-2", "Nimbus Earbuds 2", "Nimbus"), ("STB-CANDL-5", "Sea Salt Candle", "Ember"),
)
STOCKED_STORES = 4  # per product
WISHLIST_ITEMS = (1, 3)
MIN_STAY_S = 15.0  # an order is only placed at a desk store the shopper stays in this long: they will enter it


class CommerceSetupError(RuntimeError):
    """The server refused to set up the catalog, stock or the commerce key."""


@dataclass
class Commerce:
    """What one run set up: its commerce key, and the orders it placed (order id by shopper name)."""

    http: httpx.AsyncClient
    server: str
    slug: str
    rng: random.Random
    kid: str = ""
    secret: str = ""
    orders: dict[str, int] = field(default_factory=dict)
    collected: dict[str, dict[str, Any]] = field(default_factory=dict)

    @staticmethod
    def _ok(resp: httpx.Response, what: str) -> Any:
        if resp.status_code >= 300:
            raise CommerceSetupError(f"{what}: {resp.status_code} {resp.text[:200]}")
        return resp.json() if resp.content else {}

    async def start(self) -> Commerce:
        """Create the run's commerce key, the catalog and stock in a few stores per product."""
        base = f"{self.server}/v1/venues/{self.slug}"
        key = self._ok(await self.http.post(f"{base}/signing-keys/commerce"), "commerce key")
        self.kid, self.secret = key["kid"], key["secret"]
        stores = [s["id"] for s in self._ok(await self.http.get(f"{base}/stores"), "stores")]
        for sku, name, brand in CATALOG:
            self._ok(await self.http.put(f"{base}/products/{sku}", json={"name": name, "brand": brand}), sku)
            changes = [{"sku": sku, "store_id": store, "quantity": self.rng.choice((0, 2, 5, 12))}
                       for store in self.rng.sample(stores, min(STOCKED_STORES, len(stores)))]
            self._ok(await self.signed("inventory", {"changes": changes}), f"stock of {sku}")
        return self

    async def close(self) -> None:
        """Retire the run's key: the next run makes its own, verification stays one key long."""
        if self.kid:
            await self.http.delete(f"{self.server}/v1/venues/{self.slug}/signing-keys/commerce/{self.kid}")

    async def signed(self, topic: str, payload: dict[str, Any]) -> httpx.Response:
        """POST to the venue's inbound webhook as its commerce system does: HMAC over timestamp and body."""
        body = json.dumps(payload).encode()
        ts = int(time.time())
        return await self.http.post(f"{self.server}/v1/venues/{self.slug}/inbound/{topic}", content=body, headers={
            "Content-Type": "application/json", "Mallfence-Timestamp": str(ts),
            "Mallfence-Signature": sign(self.secret, ts, body)})

    async def prepare(self, shopper: Shopper, desk: StaffDesk | None, seed: int) -> None:
        """After the shopper registered: (with a desk on the way) log in as a loyalty member, save a few
        products, and have the commerce system place an order at that store and make it ready."""
        loyalty = f"stub-{seed}-{shopper.name}"
        if desk is not None:  # before the wishlist: linking may move the install to that member's shopper
            resp = await self.http.put(f"{self.server}/v1/venues/{self.slug}/shoppers/link",
                                       json={"device_id": shopper.device_id, "loyalty_id": loyalty})
            if resp.status_code != 200:
                raise ShopperFailed(f"loyalty link refused: {resp.status_code} {resp.text[:200]}")
        auth = {"Authorization": f"Bearer {shopper.token}"}
        for sku, _, _ in self.rng.sample(CATALOG, self.rng.randint(*WISHLIST_ITEMS)):
            resp = await self.http.put(f"{self.server}/v1/devices/{shopper.device_id}/wishlist/{sku}", headers=auth)
            if resp.status_code not in (200, 201):
                raise ShopperFailed(f"wishlist refused: {resp.status_code} {resp.text[:200]}")
        if desk is None:
            return
        sku, name, _ = self.rng.choice(CATALOG)
        order = {"external_id": f"STUB-{seed}-{shopper.name}-{int(time.time())}", "loyalty_id": loyalty,
                 "store_id": desk.store_id, "items": [{"sku": sku, "qty": 1, "name": name}]}
        for status in ("placed", "ready"):
            resp = await self.signed("orders", {**order, "status": status})
            if resp.status_code not in (200, 201):
                raise ShopperFailed(f"order {status} refused: {resp.status_code} {resp.text[:200]}")
        self.orders[shopper.name] = int(resp.json()["id"])

    async def hand_over(self, shopper: Shopper, desk: StaffDesk, card: dict[str, Any]) -> dict[str, Any] | None:
        """Staff just scanned the shopper: collect their ready order if the card lists it."""
        order_id = self.orders.get(shopper.name)
        if order_id is None or not any(o.get("id") == order_id and o.get("status") == "ready"
                                       for o in card.get("orders") or []):
            return None
        resp = await self.http.post(f"{desk.server}/v1/staff/orders/{order_id}/collect", headers=desk.headers)
        if resp.status_code != 200:
            raise StaffError(f"collecting order {order_id} refused: {resp.status_code} {resp.text[:200]}")
        self.collected[shopper.name] = resp.json()
        return self.collected[shopper.name]


def desk_on_the_way(venue: Venue, walk: list[Sample], desks: dict[int, StaffDesk]) -> StaffDesk | None:
    """The first staffed store the walk stays in for ``MIN_STAY_S``: where this shopper's order waits."""
    first: list[tuple[float, int]] = []
    for zone in (z for z in venue.zones if z.id in desks):
        inside = [s.t_offset_s for s in walk if s.floor == zone.level and zone.geom.covers(shapely.Point(s.x, s.y))]
        if inside and inside[-1] - inside[0] >= MIN_STAY_S:
            first.append((inside[0], zone.id))
    return desks[min(first)[1]] if first else None
