"""A swarm of simulated shoppers on one simulated clock against one server."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import shapely

from mallfence.spatial.beacons import BeaconMap, beacons_from_geojson
from mobile_stub.clock import Clock, Fix
from mobile_stub.commerce import Commerce, CommerceSetupError, desk_on_the_way
from mobile_stub.noise import add_noise
from mobile_stub.radio import Radio
from mobile_stub.shopper import Shopper, ShopperFailed
from mobile_stub.staff import StaffDesk, StaffError
from mobile_stub.summary import RunSummary, ShopperEvent
from mobile_stub.venue import Venue, VenueError, fetch_venue, load_venue_file
from mobile_stub.walker import Sample, plan_walk

STAGGER_S = (3.0, 12.0)  # simulated seconds between two shoppers' starts
LOCATORS = ("gps", "beacons", "mixed")  # mixed: every second shopper locates by beacons
QR_SCAN_P = 0.6  # chance a shopper who stays by a QR code scans it
QR_MIN_STAY_S = 20.0  # ...if they stay in its zone at least this long
SHADOWING_DB = 5.0


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


def _scans(venue: Venue, radio: Radio, name: str, walk: list[Sample], start: float, clock: Clock,
           seed: int) -> list[Fix]:
    """One beacon scan per sample, heard through ``radio`` (shadowing, dropouts, floors); where no beacon
    is heard (outdoors), a GPS fix instead, as an app that uses beacons indoors does."""
    rng = np.random.default_rng(seed)
    x = np.array([s.x for s in walk])
    y = np.array([s.y for s in walk])
    floor = np.array([s.floor if s.floor is not None else 0 for s in walk], dtype=float)
    rssi, heard = radio.hear(x, y, floor, rng, sigma=SHADOWING_DB)
    gps = {f.id: f for f in _fixes(venue, name, walk, start, clock, seed + 1)}
    out = []
    for i, s in enumerate(walk):
        readings = radio.readings(rssi[i], heard[i])
        t = start + s.t_offset_s
        if readings:
            out.append(Fix(t, {"id": f"{name}:b{i}", "ts": clock.iso(t), "beacons": readings}, kind="scan"))
        elif f"{name}:{i}" in gps:
            out.append(gps[f"{name}:{i}"])
    return out


def _qr_plan(codes: list[tuple[str, Any]], walk: list[Sample], start: float, clock: Clock,
             rng: random.Random) -> list[Fix]:
    """QR codes this shopper scans: those in zones it stays in for a while, each at most once, mid-stay."""
    out = []
    for payload, zone in codes:
        inside = [i for i, s in enumerate(walk) if s.floor == zone.level and zone.geom.covers(shapely.Point(s.x, s.y))]
        if not inside or (walk[inside[-1]].t_offset_s - walk[inside[0]].t_offset_s) < QR_MIN_STAY_S:
            continue
        if rng.random() < QR_SCAN_P:
            t = start + walk[inside[len(inside) // 2]].t_offset_s + 0.5
            out.append(Fix(t, {"payload": payload, "ts": clock.iso(t)}, kind="qr"))
    return out


async def _beacon_map(http: httpx.AsyncClient, server: str, slug: str, venue: Venue,
                      beacons_file: str | None) -> BeaconMap:
    if beacons_file:
        data = json.loads(Path(beacons_file).read_text(encoding="utf-8"))
    else:
        resp = await http.get(f"{server}/v1/venues/{slug}/beacons/export")
        if resp.status_code != 200:
            raise StubError(f"cannot read the venue's beacons: {resp.status_code} {resp.text[:200]}")
        data = resp.json()
    beacons = beacons_from_geojson(data, venue.projection)
    if not beacons:
        raise StubError(f"venue {slug!r} has no beacons: import some (zones/README.md) or use --locator gps")
    return BeaconMap(beacons)


async def _qr_codes(http: httpx.AsyncClient, server: str, slug: str, venue: Venue) -> list[tuple[str, Any]]:
    """(payload, zone) of the venue's active codes, read as the printed codes on the walls."""
    codes = (await http.get(f"{server}/v1/venues/{slug}/qr-codes")).json()
    stores = {st["id"]: st.get("zone_id") for st in (await http.get(f"{server}/v1/venues/{slug}/stores")).json()}
    zones = {z.id: z for z in venue.zones}
    out = []
    for c in codes if isinstance(codes, list) else []:
        zone = zones.get(c.get("zone_id") or stores.get(c.get("store_id")))
        if c.get("active") and zone is not None:
            out.append((c["payload"], zone))
    return out


def _announced(on_register: Callable[[str, str], None] | None,
               then: Callable[[Shopper], Awaitable[None]] | None) -> Callable[[Shopper], Awaitable[None]] | None:
    """Tell ``on_register`` (name, device id) once a shopper has its id, then run ``then``."""
    if on_register is None:
        return then

    async def registered(shopper: Shopper) -> None:
        on_register(shopper.name, shopper.device_id)
        if then is not None:
            await then(shopper)
    return registered


def _consent(rng: random.Random) -> dict[str, Any]:
    """A consent screen answered: location always (the app is about it), marketing and analytics often."""
    return {"location": True, "marketing": rng.random() < 0.7, "analytics": rng.random() < 0.8,
            "version": "stub-2026-12"}


def _background(i: int, every: int, start: float, walk: list[Sample]) -> tuple[float, float] | None:
    """From 40 % into the walk, four simulated minutes away from the app, for every ``every``-th shopper."""
    if every <= 0 or (i + 1) % every:
        return None
    return start + 0.4 * walk[-1].t_offset_s, 240.0


def _preparer(shop: Commerce | None, desk: StaffDesk | None,
              seed: int) -> Callable[[Shopper], Awaitable[None]] | None:
    """The shopper's set-up after registering: wishlist, and an order waiting at ``desk``."""
    if shop is None:
        return None
    return lambda shopper: shop.prepare(shopper, desk, seed)


async def _app_key(http: httpx.AsyncClient, server: str, slug: str) -> str:
    resp = await http.get(f"{server}/v1/venues/{slug}/app-key")
    if resp.status_code != 200:
        raise StubError(f"cannot read venue {slug!r}'s app key ({resp.status_code}): give --app-key, or an admin "
                        "--api-key")
    return str(resp.json()["app_key"])


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
    locator: str = "gps",
    beacons_file: str | None = None,
    scan_qr: bool = False,
    staff_tokens: tuple[str, ...] = (),
    on_card: Callable[[str, dict[str, Any]], None] | None = None,
    commerce: bool = False,
    on_order: Callable[[str, dict[str, Any]], None] | None = None,
    on_register: Callable[[str, str], None] | None = None,
    api_key: str | None = None,
    app_key: str | None = None,
) -> RunSummary:
    """Walk simulated shoppers through a venue against a server and return the run's totals.

    ``locator``: gps (noisy fixes), beacons (scans heard through mobile_stub.radio), or mixed.
    ``scan_qr``: shoppers scan QR codes where they linger. ``staff_tokens``: staff apps at their stores;
    a shopper entering such a store shows its identity code, staff scan it and ``on_card`` gets the card.
    ``commerce``: a small catalog with stock, a wishlist per shopper, and for every second shopper whose walk
    passes a staffed store a ready click-and-collect order there, handed over when staff scan them
    (``on_order`` gets the collected order).
    """
    # StubError only when the run cannot start; a shopper's own failure is counted in the summary.
    # max_duration_s is wall-clock seconds: what a person watching the demo can relate to.
    if transport not in ("ws", "http"):
        raise StubError(f"transport must be 'ws' or 'http', not {transport!r}")
    if locator not in LOCATORS:
        raise StubError(f"locator must be one of {', '.join(LOCATORS)}, not {locator!r}")
    if shoppers < 1 or speedup <= 0 or sample_interval_s <= 0 or batch_s <= 0:
        raise StubError("shoppers, speedup, sample interval and batch must be positive")
    server = server_url.rstrip("/")
    # The operator key reads what a real app would get from its own backend (the map, beacons, codes) and
    # sets up the run (staff, commerce); each shopper then talks to the server as a device of its own.
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0), headers=headers) as http:
        await _check_server(http, server)
        try:
            venue = load_venue_file(venue_file) if venue_file else await fetch_venue(http, server, venue_slug)
        except (VenueError, httpx.HTTPError) as exc:
            raise StubError(str(exc)) from exc
        slug = venue_slug or venue.slug
        app_key = app_key or await _app_key(http, server, slug)
        try:
            walks = await asyncio.to_thread(plan_swarm, venue, shoppers, seed, sample_interval_s)
        except ValueError as exc:
            raise StubError(f"cannot plan walks: {exc}") from exc
        radio = None
        if locator != "gps":
            radio = Radio(await _beacon_map(http, server, slug, venue, beacons_file), np.random.default_rng(seed))
        codes = await _qr_codes(http, server, slug, venue) if scan_qr else []
        desks: dict[int, StaffDesk] = {}
        for token in staff_tokens:
            desk = StaffDesk(http, server, token)
            try:
                await desk.sign_in()
            except StaffError as exc:
                raise StubError(str(exc)) from exc
            if desk.zone_id is not None:
                desks[desk.zone_id] = desk
        shop = None
        if commerce:
            try:
                shop = await Commerce(http, server, slug, random.Random(seed * 7907)).start()
            except (CommerceSetupError, httpx.HTTPError) as exc:
                raise StubError(f"cannot set up commerce: {exc}") from exc
        rng = random.Random(seed)
        starts = list(np.cumsum([0.0] + [rng.uniform(*STAGGER_S) for _ in range(shoppers - 1)]))
        span = max(s + w[-1].t_offset_s for s, w in zip(starts, walks, strict=True))
        if max_duration_s is not None:
            span = min(span, max_duration_s * speedup)
        clock = Clock(speedup, span)
        deadline = clock.wall0 + max_duration_s if max_duration_s is not None else None
        visiting: list[asyncio.Task[None]] = []

        async def show_code(shopper: Shopper, desk: StaffDesk) -> None:
            try:
                card = await desk.scan(await shopper.identity_code(desk.store_id))
            except (StaffError, ShopperFailed, httpx.HTTPError) as exc:
                shopper._error(f"staff scan failed: {exc}")
                return
            shopper.stats.cards += 1
            if on_card is not None:
                on_card(shopper.name, card)
            if shop is not None:
                try:
                    order = await shop.hand_over(shopper, desk, card)
                except (StaffError, httpx.HTTPError) as exc:
                    shopper._error(f"order hand-over failed: {exc}")
                    return
                if order is not None and on_order is not None:
                    on_order(shopper.name, order)

        def events_for(shopper_box: list[Shopper]) -> Callable[[ShopperEvent], None]:
            served: set[int] = set()

            def handle(ev: ShopperEvent) -> None:
                zone_id = (ev.event.get("zone") or {}).get("id")
                if ev.kind == "enter" and zone_id in desks and zone_id not in served:
                    served.add(zone_id)  # one card per store visit is what a staff member would do
                    visiting.append(asyncio.get_running_loop().create_task(show_code(shopper_box[0], desks[zone_id])))
                if on_event is not None:
                    on_event(ev)
            return handle

        crowd: list[Shopper] = []
        for i, (walk, start) in enumerate(zip(walks, starts, strict=True)):
            name = f"shopper-{i + 1}"
            on_beacons = radio is not None and (locator == "beacons" or i % 2 == 1)
            items = (_scans(venue, radio, name, walk, float(start), clock, seed * 100_003 + i + 7)
                     if on_beacons and radio
                     else _fixes(venue, name, walk, float(start), clock, seed * 100_003 + i + 7))
            items += _qr_plan(codes, walk, float(start), clock, random.Random(seed * 7919 + i))
            items.sort(key=lambda f: f.t)
            box: list[Shopper] = []
            order_desk = desk_on_the_way(venue, walk, desks) if shop is not None and i % 2 == 0 else None
            shopper = Shopper(
                name, items, http=http, server_url=server, venue_slug=slug, clock=clock, transport=transport,
                batch_s=batch_s, deadline=deadline, on_event=events_for(box) if desks else on_event,
                level_label=venue.level_label, on_push=on_push,
                background=_background(i, background_every, float(start), walk),
                locator="beacons" if on_beacons else "gps", consent=_consent(random.Random(seed * 31 + i)),
                on_registered=_announced(on_register, _preparer(shop, order_desk, seed)), app_key=app_key,
            )
            box.append(shopper)
            crowd.append(shopper)

        async def staggered(s: Shopper, start: float) -> None:
            await clock.sleep_until(start)
            if deadline is None or time.monotonic() < deadline:
                await s.run()

        try:
            await asyncio.gather(*(staggered(s, float(t)) for s, t in zip(crowd, starts, strict=True)))
            if visiting:
                await asyncio.wait(visiting, timeout=15)
        finally:
            if shop is not None:
                await shop.close()
    wall = time.monotonic() - clock.wall0
    return RunSummary.from_stats(
        [s.stats for s in crowd], transport=transport, speedup=speedup, wall_s=wall,
        simulated_s=min(span, wall * speedup),
    )
