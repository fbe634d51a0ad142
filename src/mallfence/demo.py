"""`mallfence demo`: the sample mall, a live server and simulated shoppers, all on this machine.

Embedded default only: a fresh SQLite file under ./var, the server on 127.0.0.1 in a thread, the
local FCM server standing in for Firebase, mobile_stub shoppers walking the mall over websockets
(every second one located by Bluetooth beacons instead of GPS, every third one putting the app in the
background for a while, all scanning QR codes where they linger, with wishlists, and half of them
with a click-and-collect order), staff apps in a few stores that scan the identity code of each
shopper who walks in and hand over orders, two campaigns competing for a budget of two pushes a day,
and an operator's announcement to the whole mall. Prints each event, decision, push, customer card
and staff alert as it happens, then a summary.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from mallfence import demo_watch as watch
from mallfence.cli import import_beacons_file, import_file, import_qr_file
from mallfence.config import Settings
from mallfence.delivery.fcm_local import LocalFcm
from mallfence.errors import DomainError, Invalid
from mallfence.server import BackgroundServer

DEMO_DB = Path("var/demo.db")
_COLOURS = {"enter": "\033[32m", "dwell": "\033[33m", "exit": "\033[36m", "push": "\033[35m", "card": "\033[34m",
            "qr_scan": "\033[1m", "staff_scan": "\033[1m", "decision": "\033[2m"}
STAFFED_STORES = 12  # stores with a staff app that scans arriving shoppers (the QR-coded ones first)


def run_demo(*, shoppers: int, speedup: float, seed: int, venue_file: str, duration_s: float | None) -> int:
    from mobile_stub import ShopperEvent, StubError, run_shoppers
    from mobile_stub.staff import format_card

    path = Path(venue_file)
    if not path.is_file():
        print(f"venue file {path} not found: run the demo from the repository root", file=sys.stderr)
        return 2
    for stale in DEMO_DB.parent.glob(DEMO_DB.name + "*"):
        stale.unlink()
    with LocalFcm() as fcm:
        # The shoppers live at `speedup` times real time: their apps send that many times more per second.
        settings = Settings(database_url=f"sqlite:///{DEMO_DB}", fcm_credentials_file=fcm.credentials_file,
                            fcm_base_url=fcm.url, ack_timeout_s=10.0, device_rate_per_s=max(10.0, 5 * speedup),
                            device_burst=max(40.0, 20 * speedup))
        try:
            summary = import_file(settings, path, None)
        except (Invalid, DomainError) as exc:
            print(f"cannot load {path}: {exc}", file=sys.stderr)
            return 2
        slug = _slug(path)
        print(f"loaded {path}: {summary.zones} zones, {summary.stores} stores, {summary.levels_created} levels")
        extras = [(import_beacons_file, path.with_name(f"{slug}-beacons.geojson"), "beacons"),
                  (import_qr_file, path.with_name(f"{slug}-qr.json"), "codes")]
        locator = "gps"
        for load, extra, what in extras:
            if extra.is_file():
                try:
                    count = getattr(load(settings, extra, slug), what)
                except (Invalid, DomainError) as exc:
                    print(f"cannot load {extra}: {exc}", file=sys.stderr)
                    return 2
                print(f"loaded {extra}: {count} {'QR codes' if what == 'codes' else what}")
                locator = "mixed" if what == "beacons" else locator
        colour = sys.stdout.isatty()
        started = time.monotonic()

        printing = threading.Lock()  # shoppers, the operator and the FCM watcher print from different threads

        def say(kind: str, text: str) -> None:
            line = f"[{time.monotonic() - started:6.1f}s] {text}"
            with printing:
                print(f"{_COLOURS.get(kind, '')}{line}\033[0m" if colour else line, flush=True)

        def show(ev: ShopperEvent) -> None:
            say(ev.kind, ev.format())

        def ws_push(shopper: str, msg: dict[str, Any]) -> None:
            say("push", f"{shopper:<12} push   via websocket: {msg.get('title')} (#{msg.get('id')})")

        def card(shopper: str, body: dict[str, Any]) -> None:
            say("card", f"{shopper:<12} card   staff of {body['store']['name']} scanned its code: {format_card(body)}")

        def collected(shopper: str, order: dict[str, Any]) -> None:
            wait = order.get("wait_s")
            say("card", f"{shopper:<12} order  {order.get('external_id')} handed over"
                        + (f" after {wait:.0f} s at the pickup point" if isinstance(wait, int | float) else ""))

        names: dict[str, str] = {}  # device id -> shopper name, for the decision log

        key = _operator_key(settings)
        with BackgroundServer(settings) as url, httpx.Client(base_url=url, headers={
                "Authorization": f"Bearer {key}"}, timeout=15.0) as ops:
            print(f"mallfence serving on {url} (OpenAPI at {url}/docs); local FCM at {fcm.url}")
            print(f"operator console: {url}/console/ (sign in with the demo's key {key})")
            staff, staffed = _hire_staff(ops, slug)
            campaigns = {c["id"]: c["name"] for c in watch.setup_engagement(ops, slug, staffed[:4])}
            located = "every second one on beacons" if locator == "mixed" else "GPS"
            print(f"{shoppers} shoppers at {speedup:g}x speed ({located}), with wishlists and click-and-collect "
                  f"orders; staff apps in {len(staff)} stores; campaigns: {', '.join(campaigns.values())} under a "
                  "budget of two pushes a day\n")
            stop = threading.Event()
            helpers = [threading.Thread(target=watch.operator, args=(ops, slug, stop, say), daemon=True),
                       threading.Thread(target=watch.fcm, args=(fcm, stop, say), daemon=True),
                       threading.Thread(target=watch.decisions, args=(ops, slug, names, campaigns, stop, say),
                                        daemon=True),
                       threading.Thread(target=watch.staff_alerts, args=(url, staff, stop, say), daemon=True)]
            for t in helpers:
                t.start()
            try:
                result = asyncio.run(run_shoppers(url, slug, shoppers=shoppers, speedup=speedup, seed=seed,
                                                  on_event=show, on_push=ws_push, background_every=3,
                                                  max_duration_s=duration_s, locator=locator, scan_qr=True,
                                                  staff_tokens=staff, on_card=card, commerce=True, api_key=key,
                                                  on_order=collected,
                                                  on_register=lambda name, device: names.__setitem__(device, name)))
            except StubError as exc:
                print(f"demo failed: {exc}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("\ninterrupted")
                return 130
            finally:
                stop.set()
                for t in helpers:
                    t.join(timeout=5)
            statuses = Counter(n["status"] for n in ops.get(f"/v1/venues/{slug}/notifications",
                                                              params={"limit": 500}).json())
        print()
        print(result.format())
        print(f"notifications: {dict(statuses)}; FCM received {len(fcm.received)} message(s)")
    return 0 if result.ok and result.events else 1


def _operator_key(settings: Settings) -> str:
    """The demo's platform admin key, made as `mallfence keys create` would."""
    from mallfence.auth import service
    from mallfence.db import make_engine, make_session_factory, transaction

    engine = make_engine(settings.database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            return service.create_key(session, name="demo", role="admin", venue_ids=None)[1]
    finally:
        engine.dispose()


def _hire_staff(ops: httpx.Client, slug: str) -> tuple[tuple[str, ...], list[int]]:
    """One staff app in each of a few stores, the ones with QR codes first: (their tokens, the store ids)."""
    stores = ops.get(f"/v1/venues/{slug}/stores").json()
    coded = {c.get("store_id") for c in ops.get(f"/v1/venues/{slug}/qr-codes").json()}
    picked = sorted(stores, key=lambda st: (st["id"] not in coded, st["id"]))[:STAFFED_STORES]
    tokens = tuple(ops.post(f"/v1/venues/{slug}/staff", json={"store_id": st["id"], "name": f"Desk {i + 1}"})
                   .json()["token"] for i, st in enumerate(picked))
    return tokens, [st["id"] for st in picked]


def _slug(path: Path) -> str:
    import json

    return json.loads(path.read_text())["venue"]["slug"]
