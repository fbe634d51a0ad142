"""Black box, engagement: stub shoppers with wishlists and orders walk the sample mall while two campaigns compete
for a budget of two pushes a day; every push an app shows was decided, and no shopper gets more than the budget."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest

from mallfence import demo_watch
from mallfence.cli import import_file
from mallfence.config import Settings
from mallfence.server import BackgroundServer
from mobile_stub import run_shoppers
from tests.auth import bearer

MALL = Path(__file__).parents[2] / "zones" / "harbourside-mall.geojson"

pytestmark = pytest.mark.scenario


def test_campaigns_and_commerce_share_one_budget(settings: Settings, platform_key: str) -> None:
    import_file(settings, MALL, None)
    pushes: dict[str, list[dict]] = defaultdict(list)
    devices: dict[str, str] = {}
    with BackgroundServer(settings) as url, httpx.Client(base_url=url, headers=bearer(platform_key),
                                                             timeout=15) as ops:
        stores = [s["id"] for s in ops.get("/v1/venues/harbourside/stores").json()]
        staff = tuple(ops.post("/v1/venues/harbourside/staff", json={"store_id": s, "name": f"S{s}"})
                      .json()["token"] for s in stores)
        campaigns = {c["id"]: c for c in demo_watch.setup_engagement(ops, "harbourside", stores[:10])}
        summary = asyncio.run(run_shoppers(
            url, "harbourside", api_key=platform_key, shoppers=4, speedup=150, seed=3, commerce=True,
            staff_tokens=staff, on_push=lambda name, msg: pushes[name].append(msg),
            on_register=lambda name, device: devices.__setitem__(name, device)))
        log = ops.get("/v1/venues/harbourside/decisions", params={"limit": 1000}).json()
    assert summary.ok and not summary.errors, summary.format()
    by_device: dict[str, list[dict]] = defaultdict(list)
    for d in log:
        by_device[d["device_id"]].append(d)
    kinds = Counter((d["kind"], d["sent"]) for d in log)
    assert kinds[("wishlist_in_stock", True)] >= 1, kinds  # every stub shopper saved items that are stocked
    assert any(d["campaign_id"] in campaigns for d in log), "no campaign was ever considered"
    shown_total = 0
    for name, device in devices.items():
        mine = by_device[device]
        budgeted = [d for d in mine if d["sent"] and d["category"] != "service"]
        assert len(budgeted) <= 2, f"{name} got {len(budgeted)} budgeted pushes"
        sent_ids = {d["notification_id"] for d in mine if d["sent"]}
        shown = {m["id"] for m in pushes[name] if m.get("data", {}).get("kind")}  # decided pushes, not announcements
        assert shown <= sent_ids, f"{name} was shown pushes nobody decided: {shown - sent_ids}"
        shown_total += len(shown)
        held = [d for d in mine if not d["sent"]]
        assert all(d["reason"] for d in held)  # every held-back push says why
    assert shown_total >= len(devices)  # the apps did show decided pushes
