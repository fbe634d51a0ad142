"""A swarm of simulated shoppers on one simulated clock against one server."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from mobile_stub.clock import Clock, Fix
from mobile_stub.noise import add_noise
from mobile_stub.shopper import Shopper
from mobile_stub.summary import RunSummary, ShopperEvent
from mobile_stub.venue import Venue, VenueError, fetch_venue, load_venue_file
from mobile_stub.walker import Sample, plan_walk

STAGGER_S = (3.0, 12.0)  # simulated seconds between two shoppers' starts


class StubError(RuntimeError):
    """The run cannot start: server unreachable, venue unknown, bad arguments."""


def plan_swarm(venue: Venue, shoppers: int, seed: int, sample_interval_s: float = 1.0) -> list[list[Sample]]:
    """Every shopper's walk; shopper i's walk depends only on (seed, i)."""
    return [
        plan_walk(venue, random.Random(seed * 100_003 + i), sample_interval_s=sample_interval_s)
        for i in range(shoppers)
    ]


def _fixes(venue: Venue, name: str, walk: list[Sample], start: float, clock: Clock, seed: int) -> list[Fix]:
    noisy = add_noise(walk, seed, [lv.ordinal for lv in venue.levels])
    lons, lats = venue.to_wgs84(np.array([f.x for f in noisy]), np.array([f.y for f in noisy]))
    return [
        Fix(start + f.t_offset_s, {
            "id": f"{name}:{i}",
            "lat": round(float(lat), 7),
            "lon": round(float(lon), 7),
            "accuracy_m": f.accuracy_m,
            "floor": f.floor,
            "ts": clock.iso(start + f.t_offset_s),
        })
        for i, (f, lon, lat) in enumerate(zip(noisy, lons.tolist(), lats.tolist(), strict=True))
    ]


def _background(i: int, every: int, start: float, walk: list[Sample]) -> tuple[float, float] | None:
    """From 40 % into the walk, four simulated minutes away from the app, for every ``every``-th shopper."""
    if every <= 0 or (i + 1) % every:
        return None
    return start + 0.4 * walk[-1].t_offset_s, 240.0


async def _check_server(http: httpx.AsyncClient, server: str) -> None:
    try:
        resp = await http.get(f"{server}/healthz")
    except httpx.HTTPError as exc:
        raise StubError(f"server unreachable at {server}: {exc!r}") from exc
    if resp.status_code != 200:
        raise StubError(f"{server}/healthz answered {resp.status_code}: {resp.text[:200]}")


async def run_shoppers(
    server_url: str,
    venue_slug: str,
    *,
    shoppers: int = 5,
    speedup: float = 20.0,
    seed: int = 1,
    transport: str = "ws",
    on_event: Callable[[ShopperEvent], None] | None = None,
    venue_file: str | None = None,
    max_duration_s: float | None = None,
    sample_interval_s: float = 1.0,
    batch_s: float = 10.0,
    on_push: Callable[[str, dict[str, Any]], None] | None = None,
    background_every: int = 0,
) -> RunSummary:
    """Walk simulated shoppers through a venue against a server and return the run's totals."""
    # StubError only when the run cannot start; a shopper's own failure is counted in the summary.
    # max_duration_s is wall-clock seconds: what a person watching the demo can relate to.
    if transport not in ("ws", "http"):
        raise StubError(f"transport must be 'ws' or 'http', not {transport!r}")
    if shoppers < 1 or speedup <= 0 or sample_interval_s <= 0 or batch_s <= 0:
        raise StubError("shoppers, speedup, sample interval and batch must be positive")
    server = server_url.rstrip("/")
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        await _check_server(http, server)
        try:
            venue = load_venue_file(venue_file) if venue_file else await fetch_venue(http, server, venue_slug)
        except (VenueError, httpx.HTTPError) as exc:
            raise StubError(str(exc)) from exc
        slug = venue_slug or venue.slug
        try:
            walks = await asyncio.to_thread(plan_swarm, venue, shoppers, seed, sample_interval_s)
        except ValueError as exc:
            raise StubError(f"cannot plan walks: {exc}") from exc
        rng = random.Random(seed)
        starts = list(np.cumsum([0.0] + [rng.uniform(*STAGGER_S) for _ in range(shoppers - 1)]))
        span = max(s + w[-1].t_offset_s for s, w in zip(starts, walks, strict=True))
        if max_duration_s is not None:
            span = min(span, max_duration_s * speedup)
        clock = Clock(speedup, span)
        deadline = clock.wall0 + max_duration_s if max_duration_s is not None else None
        crowd = [
            Shopper(
                f"shopper-{i + 1}",
                _fixes(venue, f"shopper-{i + 1}", walk, float(start), clock, seed * 100_003 + i + 7),
                http=http, server_url=server, venue_slug=slug, clock=clock, transport=transport,
                batch_s=batch_s, deadline=deadline, on_event=on_event, level_label=venue.level_label,
                on_push=on_push, background=_background(i, background_every, float(start), walk),
            )
            for i, (walk, start) in enumerate(zip(walks, starts, strict=True))
        ]

        async def staggered(s: Shopper, start: float) -> None:
            await clock.sleep_until(start)
            if deadline is None or time.monotonic() < deadline:
                await s.run()

        await asyncio.gather(*(staggered(s, float(t)) for s, t in zip(crowd, starts, strict=True)))
    wall = time.monotonic() - clock.wall0
    return RunSummary.from_stats(
        [s.stats for s in crowd], transport=transport, speedup=speedup, wall_s=wall,
        simulated_s=min(span, wall * speedup),
    )
