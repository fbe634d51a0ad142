"""``mobile-stub swarm``: a load generator. N simulated shoppers at once, each sending ``rate`` fixes a second
for ``duration`` seconds over a websocket or in HTTP batches, reporting what was sent and received, the
throughput, and the latency from a fix sent to its event received.

It reuses the walk of ``mobile-stub walk`` (the same walker, registration and transports: mobile_stub.shopper),
but every shopper starts at once and the simulated clock runs at ``rate`` simulated seconds per wall second
(one fix per simulated second), so the load is paced rather than staggered.

Bounded on purpose: at most MAX_SHOPPERS shoppers, MAX_DURATION_S seconds, MAX_RATE fixes/s per shopper,
MAX_FIXES fixes in all, and only against a server on this machine (127.0.0.1, ::1, localhost): it is a
load generator, and pointed elsewhere it would be a denial of service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from mobile_stub.clock import Clock
from mobile_stub.shopper import Shopper, ShopperFailed
from mobile_stub.summary import _pct
from mobile_stub.swarm import StubError, _app_key, _check_server, _consent, _fixes
from mobile_stub.venue import Venue, VenueError, fetch_venue, load_venue_file
from mobile_stub.walker import Sample, plan_walk

MAX_SHOPPERS = 2000
MAX_DURATION_S = 600.0
MAX_RATE = 10.0  # per shopper: the server's default device limit (MALLFENCE_DEVICE_RATE_PER_S) is 10 a second
WARMUP_S = 2.0  # latencies are also reported without the events of fixes sent this early (at most a quarter)
MAX_FIXES = 2_000_000  # every fix's send time is kept until the run ends, for the latencies
LOOPBACK = ("127.0.0.1", "::1", "localhost")
REGISTER_CONCURRENCY = 32


@dataclass(slots=True)
class Progress:
    elapsed_s: float
    running: int
    shoppers: int
    sent: int
    events: int
    errors: int

    def line(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0
        return (f"[{self.elapsed_s:6.1f}s] shoppers {self.running}/{self.shoppers}  sent {self.sent} "
                f"({rate:,.0f}/s)  events {self.events}  errors {self.errors}")


@dataclass(slots=True)
class SwarmReport:
    shoppers: int
    registered: int
    failed: int
    transport: str
    rate: float
    duration_s: float  # wall seconds of sending
    fixes_sent: int
    fixes_accepted: int
    events: int
    errors: list[str]
    latencies: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    # The same over events whose fix was sent after the first ``warmup_s``: the crowd's first fixes all land
    # in the first simulated second and each opens a visit, a burst no steady Saturday has.
    warmup_s: float = 0.0
    steady_latencies: int = 0
    steady_p50_ms: float | None = None
    steady_p99_ms: float | None = None

    @property
    def throughput(self) -> float:
        """Fixes sent per wall second."""
        return self.fixes_sent / self.duration_s if self.duration_s > 0 else 0.0

    def format(self) -> str:
        def ms(v: float | None) -> str:
            return f"{v:.1f} ms" if v is not None else "-"

        lines = [
            f"swarm: {self.shoppers} shoppers over {self.transport}, {self.rate:g} fixes/s each, "
            f"{self.duration_s:.1f} s",
            f"shoppers: {self.registered} registered, {self.failed} failed",
            f"fixes: {self.fixes_sent} sent, {self.fixes_accepted} accepted; throughput {self.throughput:,.0f} fixes/s "
            f"(asked {self.shoppers * self.rate:,.0f})",
            f"events received: {self.events} ({self.events / self.duration_s if self.duration_s else 0:,.1f}/s)",
            f"latency fix sent -> event received over {self.latencies} events: p50 {ms(self.p50_ms)}, "
            f"p90 {ms(self.p90_ms)}, p99 {ms(self.p99_ms)}, max {ms(self.max_ms)}",
            f"  after the first {self.warmup_s:g} s (the crowd's arrival) over {self.steady_latencies} events: "
            f"p50 {ms(self.steady_p50_ms)}, p99 {ms(self.steady_p99_ms)}",
            f"errors: {len(self.errors)}",
        ]
        lines += [f"  ! {e}" for e in self.errors[:10]]
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more")
        return "\n".join(lines)


def check_target(server_url: str) -> None:
    """Refuse any server but this machine's."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        raise StubError(f"swarm runs against a server on this machine only ({', '.join(LOOPBACK)}), "
                        f"not {server_url!r}")


def check_bounds(shoppers: int, rate: float, duration_s: float) -> None:
    if not 1 <= shoppers <= MAX_SHOPPERS:
        raise StubError(f"shoppers must be 1..{MAX_SHOPPERS}, not {shoppers}")
    if not 0 < rate <= MAX_RATE:
        raise StubError(f"rate must be in (0, {MAX_RATE:g}] fixes/s per shopper, not {rate:g}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise StubError(f"duration must be in (0, {MAX_DURATION_S:g}] s, not {duration_s:g}")
    if shoppers * rate * duration_s > MAX_FIXES:
        raise StubError(f"{shoppers} shoppers x {rate:g}/s x {duration_s:g} s is over {MAX_FIXES:,} fixes")


def _long_walk(venue: Venue, rng: random.Random, span_s: float) -> list[Sample]:
    """Walks one after the other covering ``span_s`` simulated seconds, joined somewhere in the first half of
    the first one: a Saturday crowd is already spread through the mall when the measurement starts."""
    out: list[Sample] = []
    offset = 0.0
    while not out or out[-1].t_offset_s < span_s:
        walk = plan_walk(venue, rng)
        if not out:
            skip = rng.uniform(0.0, 0.5) * walk[-1].t_offset_s
            walk = [s for s in walk if s.t_offset_s >= skip]
            offset = -walk[0].t_offset_s
        out += [dataclasses.replace(s, t_offset_s=s.t_offset_s + offset) for s in walk]
        offset = out[-1].t_offset_s + 1.0
    return [s for s in out if s.t_offset_s <= span_s]


async def run_swarm(
    server_url: str,
    venue_slug: str,
    *,
    shoppers: int = 20,
    rate: float = 1.0,
    duration_s: float = 10.0,
    transport: str = "ws",
    batch: int = 10,
    seed: int = 1,
    venue_file: str | None = None,
    api_key: str | None = None,
    app_key: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> SwarmReport:
    """Register ``shoppers`` devices, then have them all send for ``duration_s`` wall seconds."""
    check_target(server_url)
    check_bounds(shoppers, rate, duration_s)
    if transport not in ("ws", "http"):
        raise StubError(f"transport must be 'ws' or 'http', not {transport!r}")
    server = server_url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=min(shoppers, 500), max_keepalive_connections=min(shoppers, 500))
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), headers=headers, limits=limits) as http:
        await _check_server(http, server)
        try:
            venue = load_venue_file(venue_file) if venue_file else await fetch_venue(http, server, venue_slug)
        except (VenueError, httpx.HTTPError) as exc:
            raise StubError(str(exc)) from exc
        slug = venue_slug or venue.slug
        app_key = app_key or await _app_key(http, server, slug)
        span = duration_s * rate  # simulated seconds: one fix each
        try:
            walks = await asyncio.to_thread(
                lambda: [_long_walk(venue, random.Random(seed * 100_003 + i), span) for i in range(shoppers)])
        except ValueError as exc:
            raise StubError(f"cannot plan walks: {exc}") from exc

        # Register everyone first (bounded concurrency), so the clock starts with the whole crowd ready.
        placeholder = Clock(rate, span)
        crowd = [Shopper(f"swarm-{i + 1}", [], http=http, server_url=server, venue_slug=slug, clock=placeholder,
                         transport=transport, batch_s=float(batch), consent=_consent(random.Random(seed * 31 + i)),
                         app_key=app_key) for i in range(shoppers)]
        gate = asyncio.Semaphore(REGISTER_CONCURRENCY)

        async def register(s: Shopper) -> None:
            async with gate:
                try:
                    await s._register()
                except ShopperFailed as exc:
                    s._error(str(exc))
                    s.stats.failed = True

        await asyncio.gather(*(register(s) for s in crowd))
        ready = [s for s in crowd if not s.stats.failed]
        if not ready:
            raise StubError("no shopper could register: " + "; ".join(crowd[0].stats.errors[:1])
                            + " (a large swarm needs MALLFENCE_PUBLIC_RATE_PER_MIN raised on the server)")

        clock = Clock(rate, span)
        deadline = clock.wall0 + duration_s
        jitter = random.Random(seed)
        for i, s in enumerate(ready):
            # a shopper's first fix somewhere in the first simulated second: sends spread, not in lockstep
            start = jitter.random()
            s.fixes = _fixes(venue, s.name, walks[i], start, clock, seed * 100_003 + i + 7)
            s.stats.fixes_planned = len(s.fixes)
            s.clock, s.deadline = clock, deadline

        async def walk(s: Shopper) -> None:
            try:
                await (s._run_ws() if transport == "ws" else s._run_http())
            except ShopperFailed as exc:
                s._error(str(exc))
                s.stats.failed = True
            except Exception as exc:  # one shopper's surprise must not take the swarm down
                s._error(f"{type(exc).__name__}: {exc}")
                s.stats.failed = True

        tasks = [asyncio.create_task(walk(s)) for s in ready]

        async def report_progress() -> None:
            while True:
                await asyncio.sleep(1.0)
                on_progress(Progress(  # type: ignore[misc]
                    elapsed_s=time.monotonic() - clock.wall0, running=sum(not t.done() for t in tasks),
                    shoppers=len(crowd), sent=sum(s.stats.fixes_sent for s in crowd),
                    events=sum(len(s.stats.events) for s in crowd), errors=sum(len(s.stats.errors) for s in crowd)))

        progress = asyncio.create_task(report_progress()) if on_progress is not None else None
        try:
            await asyncio.gather(*tasks)
        finally:
            if progress is not None:
                progress.cancel()
        sending_s = min(time.monotonic(), deadline) - clock.wall0
    lat = sorted(e.latency_ms for s in crowd for e in s.stats.events if e.latency_ms is not None)
    warmup = min(WARMUP_S, duration_s / 4)
    steady = sorted(e.latency_ms for s in crowd for e in s.stats.events if e.latency_ms is not None
                    and e.sent_at is not None and e.sent_at >= clock.wall0 + warmup)
    return SwarmReport(
        shoppers=shoppers, registered=len(ready), failed=sum(s.stats.failed for s in crowd), transport=transport,
        rate=rate, duration_s=sending_s, fixes_sent=sum(s.stats.fixes_sent for s in crowd),
        fixes_accepted=sum(s.stats.fixes_accepted for s in crowd),
        events=sum(len(s.stats.events) for s in crowd),
        errors=[f"{s.name}: {e}" for s in crowd for e in s.stats.errors],
        latencies=len(lat), p50_ms=_pct(lat, 0.50), p90_ms=_pct(lat, 0.90), p99_ms=_pct(lat, 0.99),
        max_ms=lat[-1] if lat else None, warmup_s=warmup, steady_latencies=len(steady),
        steady_p50_ms=_pct(steady, 0.50), steady_p99_ms=_pct(steady, 0.99),
    )


def print_progress(p: Progress) -> None:
    """The progress line, rewritten in place on a terminal, one line a second otherwise."""
    end = "\r" if sys.stderr.isatty() else "\n"
    print(p.line(), end=end, file=sys.stderr, flush=True)
