"""`mallfence demo`: the sample mall, a live server and simulated shoppers, all on this machine.

Embedded default only: a fresh SQLite file under ./var, the server on 127.0.0.1 in a thread,
mobile_stub shoppers walking the mall over websockets. Prints each event as it arrives and a
summary at the end.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from mallfence.cli import import_file
from mallfence.config import Settings
from mallfence.errors import DomainError, Invalid
from mallfence.server import BackgroundServer

DEMO_DB = Path("var/demo.db")
_COLOURS = {"enter": "\033[32m", "dwell": "\033[33m", "exit": "\033[36m"}


def run_demo(*, shoppers: int, speedup: float, seed: int, venue_file: str, duration_s: float | None) -> int:
    from mobile_stub import ShopperEvent, StubError, run_shoppers

    path = Path(venue_file)
    if not path.is_file():
        print(f"venue file {path} not found: run the demo from the repository root", file=sys.stderr)
        return 2
    for stale in DEMO_DB.parent.glob(DEMO_DB.name + "*"):
        stale.unlink()
    settings = Settings(database_url=f"sqlite:///{DEMO_DB}")
    try:
        summary = import_file(settings, path, None)
    except (Invalid, DomainError) as exc:
        print(f"cannot load {path}: {exc}", file=sys.stderr)
        return 2
    slug = _slug(path)
    print(f"loaded {path}: {summary.zones} zones, {summary.stores} stores, {summary.levels_created} levels")

    colour = sys.stdout.isatty()
    started = time.monotonic()

    def show(ev: ShopperEvent) -> None:
        line = f"[{time.monotonic() - started:6.1f}s] {ev.format()}"
        if colour:
            line = f"{_COLOURS.get(ev.kind, '')}{line}\033[0m"
        print(line, flush=True)

    with BackgroundServer(settings) as url:
        print(f"mallfence serving on {url} (OpenAPI at {url}/docs); {shoppers} shoppers at {speedup:g}x speed\n")
        try:
            result = asyncio.run(run_shoppers(url, slug, shoppers=shoppers, speedup=speedup, seed=seed,
                                              on_event=show, max_duration_s=duration_s))
        except StubError as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted")
            return 130
    print()
    print(result.format())
    return 0 if result.ok and result.events else 1


def _slug(path: Path) -> str:
    import json

    return json.loads(path.read_text())["venue"]["slug"]
