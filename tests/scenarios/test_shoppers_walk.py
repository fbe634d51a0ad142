"""Black box: mobile_stub shoppers walk the sample mall against a real server over websockets."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from mallfence.cli import import_file
from mallfence.config import Settings
from mallfence.server import BackgroundServer
from mobile_stub import ShopperEvent, run_shoppers
from tests.auth import bearer

MALL = Path(__file__).parents[2] / "zones" / "harbourside-mall.geojson"

pytestmark = pytest.mark.scenario


def test_shoppers_get_enter_dwell_exit_for_the_stores_they_visit(settings: Settings, platform_key: str) -> None:
    import_file(settings, MALL, None)
    received: list[ShopperEvent] = []
    with BackgroundServer(settings) as url, httpx.Client(base_url=url, headers=bearer(platform_key),
                                                             timeout=15) as ops:
        summary = asyncio.run(run_shoppers(url, "harbourside", api_key=platform_key,
                                           shoppers=3, speedup=150, seed=11,
                                           on_event=received.append))
        venue = ops.get("/v1/venues/harbourside").json()
    assert summary.ok and not summary.errors, summary.format()
    assert summary.fixes_accepted == summary.fixes_sent > 500
    assert venue["zone_count"] == 100

    visits: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for ev in received:
        if ev.event["zone"]["kind"] == "store":
            visits[ev.shopper][ev.zone_name].append(ev.kind)
    assert set(visits) == {"shopper-1", "shopper-2", "shopper-3"}, "every shopper visits a store"
    for shopper, stores in visits.items():
        full_visits = [name for name, kinds in stores.items() if kinds[:1] == ["enter"] and "exit" in kinds
                       and "dwell" in kinds]
        assert full_visits, f"{shopper} never had a store visit with enter, dwell and exit: {dict(stores)}"
        for name, kinds in stores.items():
            # per zone the stream alternates: enter, (dwell), exit, enter, ...
            opens = 0
            for kind in kinds:
                opens += {"enter": 1, "exit": -1}.get(kind, 0)
                assert opens in (0, 1), f"{shopper} {name}: {kinds}"
    latencies = [ev.latency_ms for ev in received if ev.latency_ms is not None]
    assert len(latencies) > 20 and all(lat >= 0 for lat in latencies)
