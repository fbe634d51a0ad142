"""Command line: ``mobile-stub walk`` runs simulated shoppers against a mallfence server; ``mobile-stub swarm``
loads one with many at once and measures it; ``mobile-stub staff``
plays a store's staff app (scan a shopper's identity code, watch the store's alerts)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

from mobile_stub.summary import ShopperEvent
from mobile_stub.swarm import StubError, run_shoppers

EXIT_OK, EXIT_ALL_FAILED, EXIT_UNREACHABLE = 0, 1, 2


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type that accepts positive numbers only."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mobile-stub``."""
    parser = argparse.ArgumentParser(prog="mobile-stub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    walk = sub.add_parser("walk", help="walk simulated shoppers through a venue and print the events")
    walk.add_argument("--server", default="http://127.0.0.1:8000", help="mallfence base URL")
    walk.add_argument("--api-key", default=os.environ.get("MALLFENCE_API_KEY"),
                      help="an operator key of the venue (default: $MALLFENCE_API_KEY): reads the map and sets up "
                           "the run, as the app's own backend would")
    walk.add_argument("--app-key", help="the venue's app key (default: read with --api-key)")
    walk.add_argument("--venue", default="", help="venue slug (default: the slug in --venue-file)")
    walk.add_argument("--venue-file", help="read the venue from this export file instead of the server")
    walk.add_argument("--shoppers", type=_positive(int), default=5)
    walk.add_argument("--speedup", type=_positive(float), default=20.0,
                      help="simulated seconds per wall second")
    walk.add_argument("--seed", type=int, default=1)
    walk.add_argument("--transport", choices=("ws", "http"), default="ws")
    walk.add_argument("--duration", type=_positive(float), metavar="SECONDS",
                      help="stop after this many wall-clock seconds")
    walk.add_argument("--interval", type=_positive(float), default=1.0,
                      help="simulated seconds between two fixes")
    walk.add_argument("--batch", type=_positive(float), default=10.0,
                      help="http transport: simulated seconds of fixes per request")
    walk.add_argument("--locator", choices=("gps", "beacons", "mixed"), default="gps",
                      help="gps fixes, Bluetooth beacon scans, or every second shopper on beacons")
    walk.add_argument("--beacons-file", help="beacon layout (GeoJSON) instead of the server's registry")
    walk.add_argument("--scan-qr", action="store_true", help="shoppers scan the venue's QR codes where they linger")
    walk.add_argument("--staff-token", action="append", default=[], metavar="TOKEN",
                      help="a staff app at its store: shoppers entering it show their identity code (repeatable)")
    walk.add_argument("--commerce", action="store_true",
                      help="a small catalog with stock, wishlists, and ready orders collected at the staff desks")
    walk.add_argument("-q", "--quiet", action="store_true", help="print only the summary")

    swarm = sub.add_parser("swarm", help="load: N shoppers at once, paced, bounded, 127.0.0.1 only; prints "
                                          "throughput and fix-to-event latency percentiles")
    swarm.add_argument("--server", default="http://127.0.0.1:8000", help="mallfence base URL (loopback only)")
    swarm.add_argument("--api-key", default=os.environ.get("MALLFENCE_API_KEY"),
                       help="an operator key of the venue (default: $MALLFENCE_API_KEY): reads the map and app key")
    swarm.add_argument("--app-key", help="the venue's app key (default: read with --api-key)")
    swarm.add_argument("--venue", default="", help="venue slug (default: the slug in --venue-file)")
    swarm.add_argument("--venue-file", help="read the venue from this export file instead of the server")
    swarm.add_argument("--shoppers", type=_positive(int), default=20, help="concurrent shoppers (at most 2000)")
    swarm.add_argument("--rate", type=_positive(float), default=1.0,
                       help="fixes per second per shopper (at most 10, the default device rate limit)")
    swarm.add_argument("--duration", type=_positive(float), default=10.0, metavar="SECONDS",
                       help="seconds of sending (at most 600)")
    swarm.add_argument("--transport", choices=("ws", "http"), default="ws")
    swarm.add_argument("--batch", type=_positive(int), default=10, help="http: fixes per request")
    swarm.add_argument("--seed", type=int, default=1)
    swarm.add_argument("-q", "--quiet", action="store_true", help="no progress line")

    staff = sub.add_parser("staff", help="a staff app: scan a shopper's identity code, or watch store alerts")
    staff.add_argument("--server", default="http://127.0.0.1:8000", help="mallfence base URL")
    staff.add_argument("--token", required=True, help="the staff member's credential (mfs_…): logged in for a session")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    scan = staff_sub.add_parser("scan", help="scan one identity code and print the customer card")
    scan.add_argument("code", help="the text of the shopper's identity QR code")
    watch = staff_sub.add_parser("watch", help="print the store's alerts as they come")
    watch.add_argument("--duration", type=_positive(float), metavar="SECONDS", help="stop after this long")
    return parser


async def _staff(args: argparse.Namespace) -> int:
    import json

    import httpx

    from mobile_stub.staff import StaffDesk, StaffError, format_card

    async with httpx.AsyncClient(timeout=15.0) as http:
        desk = StaffDesk(http, args.server, args.token)
        try:
            me = await desk.sign_in()
            print(f"{me['name']} ({me['role']}) at {me['store']['name']}, {me['venue']}")
            if args.staff_command == "scan":
                card = await desk.scan(args.code)
                print(format_card(card))
                print(json.dumps(card, indent=1))
                return EXIT_OK
            stop = asyncio.Event()
            if args.duration:
                asyncio.get_running_loop().call_later(args.duration, stop.set)
            await desk.watch(lambda alert: print(json.dumps(alert), flush=True), stop)
            return EXIT_OK
        except StaffError as exc:
            print(f"mobile-stub: {exc}", file=sys.stderr)
            return EXIT_ALL_FAILED
        except httpx.HTTPError as exc:
            print(f"mobile-stub: server unreachable at {args.server}: {exc!r}", file=sys.stderr)
            return EXIT_UNREACHABLE


def _swarm(args: argparse.Namespace) -> int:
    from mobile_stub.load import print_progress, run_swarm

    if not args.venue and not args.venue_file:
        print("mobile-stub: give --venue or --venue-file", file=sys.stderr)
        return EXIT_UNREACHABLE
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        report = asyncio.run(run_swarm(
            args.server, args.venue, shoppers=args.shoppers, rate=args.rate, duration_s=args.duration,
            transport=args.transport, batch=args.batch, seed=args.seed, venue_file=args.venue_file,
            api_key=args.api_key, app_key=args.app_key, on_progress=None if args.quiet else print_progress,
        ))
    except StubError as exc:
        print(f"mobile-stub: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    if not args.quiet:
        print(file=sys.stderr)
    print(report.format())
    return EXIT_OK if report.registered > report.failed else EXIT_ALL_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mobile-stub`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "swarm":
        return _swarm(args)
    if args.command == "staff":
        try:
            return asyncio.run(_staff(args))
        except KeyboardInterrupt:
            return 130
    if not args.venue and not args.venue_file:
        print("mobile-stub: give --venue or --venue-file", file=sys.stderr)
        return EXIT_UNREACHABLE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    t0 = time.monotonic()

    def show(ev: ShopperEvent) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - t0:7.1f}s] {ev.format()}", flush=True)

    def card(shopper: str, body: dict) -> None:
        from mobile_stub.staff import format_card

        if not args.quiet:
            print(f"[{time.monotonic() - t0:7.1f}s] {shopper:<12} shows its code; staff see: {format_card(body)}",
                  flush=True)

    def order(shopper: str, body: dict) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - t0:7.1f}s] {shopper:<12} collects order {body['external_id']} at "
                  f"{body['store']['name']} (waited {body['wait_s'] if body['wait_s'] is not None else '?'} s)",
                  flush=True)

    try:
        summary = asyncio.run(run_shoppers(
            args.server, args.venue, shoppers=args.shoppers, speedup=args.speedup, seed=args.seed,
            transport=args.transport, on_event=show, venue_file=args.venue_file,
            max_duration_s=args.duration, sample_interval_s=args.interval, batch_s=args.batch,
            locator=args.locator, beacons_file=args.beacons_file, scan_qr=args.scan_qr,
            staff_tokens=tuple(args.staff_token), on_card=card, api_key=args.api_key, app_key=args.app_key,
            commerce=args.commerce, on_order=order,
        ))
    except StubError as exc:
        print(f"mobile-stub: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("mobile-stub: interrupted", file=sys.stderr)
        return 130
    print()
    print(summary.format())
    return EXIT_OK if summary.ok else EXIT_ALL_FAILED


if __name__ == "__main__":
    sys.exit(main())
