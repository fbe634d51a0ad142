"""Black box, in store: stub shoppers located by Bluetooth beacons walk the sample mall, scan its QR codes,
and show their identity code to the staff app of each store they enter, which gets the customer card."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from mallfence.cli import import_beacons_file, import_file, import_qr_file
from mallfence.config import Settings
from mallfence.server import BackgroundServer
from mobile_stub import ShopperEvent, run_shoppers
from tests.auth import bearer

ZONES = Path(__file__).parents[2] / "zones"

pytestmark = pytest.mark.scenario


def test_beacon_shoppers_enter_stores_and_staff_see_their_card(settings: Settings, platform_key: str) -> None:
    import_file(settings, ZONES / "harbourside-mall.geojson", None)
    assert import_beacons_file(settings, ZONES / "harbourside-beacons.geojson", None).beacons == 466
    assert import_qr_file(settings, ZONES / "harbourside-qr.json", None).codes == 6
    events: list[ShopperEvent] = []
    cards: list[tuple[str, dict]] = []
    with BackgroundServer(settings) as url, httpx.Client(base_url=url, headers=bearer(platform_key),
                                                             timeout=15) as ops:
        stores = ops.get("/v1/venues/harbourside/stores").json()
        tokens = tuple(ops.post("/v1/venues/harbourside/staff",
                                  json={"store_id": st["id"], "name": f"Staff of {st['name']}"}).json()["token"]
                       for st in stores)
        summary = asyncio.run(run_shoppers(url, "harbourside", api_key=platform_key,
                                           shoppers=2, speedup=150, seed=5, locator="beacons",
                                           scan_qr=True, staff_tokens=tokens, on_event=events.append,
                                           on_card=lambda shopper, card: cards.append((shopper, card))))
    assert summary.ok and not summary.errors, summary.format()
    assert all(row["beacons"] for row in summary.per_shopper.values())
    store_enters = [ev for ev in events if ev.kind == "enter" and (ev.event["zone"] or {}).get("kind") == "store"]
    assert store_enters and {ev.event["source"] for ev in store_enters} <= {"beacon", "staff", "qr"}
    located = {(ev.shopper, ev.zone_name) for ev in store_enters if ev.event["source"] == "beacon"}
    assert {s for s, _ in located} == {"shopper-1", "shopper-2"}, "each shopper walked into a store on beacons"
    # the card a staff member saw names their store and a shopper the server placed there
    assert cards, "no staff member scanned anyone"
    names = {st["id"]: st["name"] for st in stores}
    for shopper, card in cards:
        assert card["store"]["name"] == names[card["store"]["id"]]
        assert card["store"]["zone_id"] in {z["id"] for z in card["here_now"]}
        assert card["wishlist"] == [] and card["orders"] == [] and card["visits"]["days"] >= 1
        assert any(ev.shopper == shopper and ev.kind == "staff_scan" and ev.event["id"] == card["scan_id"]
                   for ev in events), f"{shopper} was not told about scan {card['scan_id']}"
    assert summary.cards == len(cards)
