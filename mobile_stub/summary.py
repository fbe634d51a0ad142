"""What a run reports: one record per event received, and the totals at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ShopperEvent:
    """A presence event as one simulated shopper received it."""

    shopper: str  # e.g. "shopper-3"
    event: dict[str, Any]  # the server's event object, unchanged
    latency_ms: float | None  # receive time minus send time of the fix named by fix_id
    level_label: str | None = None  # the zone's level as the venue names it ("L1", "venue")
    sent_at: float | None = None  # time.monotonic() when that fix was sent

    @property
    def kind(self) -> str:
        """enter, exit or dwell."""
        return str(self.event.get("kind", "?"))

    @property
    def zone_name(self) -> str:
        """The zone's name, or its id when the server sent no name."""
        zone = self.event.get("zone") or {}
        return str(zone.get("name") or zone.get("external_id") or zone.get("id", "?"))

    def format(self) -> str:
        """One line for a console."""
        lat = f"{self.latency_ms:7.1f} ms" if self.latency_ms is not None else "       -  "
        level = self.level_label or "?"
        dur = self.event.get("duration_s")
        extra = f"  after {dur:.0f} s" if isinstance(dur, int | float) and self.kind not in ("enter", "dwell") else ""
        source = self.event.get("source")
        via = f"  [{source}]" if source not in (None, "gps") else ""
        return f"{self.shopper:<12} {self.kind:<6} {self.zone_name} ({level}){extra}  latency {lat}{via}"


@dataclass(slots=True)
class ShopperStats:
    """Counters of one shopper, filled in while it runs."""

    name: str
    fixes_planned: int = 0
    locator: str = "gps"  # how the app locates itself: gps fixes or beacon scans
    fixes_sent: int = 0
    fixes_accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    events: list[ShopperEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0
    pushes: int = 0  # notifications shown from the websocket (each once)
    backgrounded: int = 0
    qr_scans: int = 0  # QR codes scanned and accepted
    cards: int = 0  # times staff scanned this shopper's identity code
    failed: bool = False


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


@dataclass(slots=True)
class RunSummary:
    """Totals of a run of simulated shoppers."""

    shoppers: int
    transport: str
    speedup: float
    kinds: dict[str, int]
    per_shopper: dict[str, dict[str, int]]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_max_ms: float | None
    latencies: int  # events that had a fix_id and so a latency
    fixes_sent: int
    fixes_accepted: int
    fixes_dropped: dict[str, int]
    errors: list[str]
    failed_shoppers: list[str]
    reconnects: int
    pushes: int  # notifications shown from the websocket
    backgrounded: int  # times a shopper put the app in the background
    wall_s: float
    simulated_s: float
    qr_scans: int = 0
    cards: int = 0

    @property
    def events(self) -> int:
        """All events received."""
        return sum(self.kinds.values())

    @property
    def ok(self) -> bool:
        """At least one shopper ran to the end."""
        return self.shoppers > 0 and len(self.failed_shoppers) < self.shoppers

    @classmethod
    def from_stats(
        cls, stats: list[ShopperStats], *, transport: str, speedup: float, wall_s: float, simulated_s: float
    ) -> RunSummary:
        """Aggregate the per-shopper counters."""
        kinds: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        per: dict[str, dict[str, int]] = {}
        lat: list[float] = []
        for s in stats:
            mine = Counter(e.kind for e in s.events)
            kinds.update(mine)
            dropped.update(s.dropped)
            per[s.name] = {"fixes": s.fixes_sent, "events": len(s.events), "beacons": s.locator == "beacons", **mine}
            lat += [e.latency_ms for e in s.events if e.latency_ms is not None]
        lat.sort()
        return cls(
            shoppers=len(stats), transport=transport, speedup=speedup,
            kinds=dict(kinds), per_shopper=per,
            latency_p50_ms=_pct(lat, 0.50), latency_p95_ms=_pct(lat, 0.95),
            latency_max_ms=lat[-1] if lat else None, latencies=len(lat),
            fixes_sent=sum(s.fixes_sent for s in stats),
            fixes_accepted=sum(s.fixes_accepted for s in stats),
            fixes_dropped=dict(dropped),
            errors=[f"{s.name}: {e}" for s in stats for e in s.errors],
            failed_shoppers=[s.name for s in stats if s.failed],
            reconnects=sum(s.reconnects for s in stats),
            pushes=sum(s.pushes for s in stats), backgrounded=sum(s.backgrounded for s in stats),
            wall_s=wall_s, simulated_s=simulated_s,
            qr_scans=sum(s.qr_scans for s in stats), cards=sum(s.cards for s in stats),
        )

    def format(self) -> str:
        """A readable summary table."""
        def ms(v: float | None) -> str:
            return f"{v:.1f} ms" if v is not None else "-"

        kinds = ("enter", "exit", "dwell")
        others = sorted(set(self.kinds) - set(kinds))
        cols = [*kinds, *others]
        lines = [
            f"{self.shoppers} shoppers over {self.transport}, speed-up {self.speedup:g}x: "
            f"{self.wall_s:.1f} s wall, {self.simulated_s / 60:.1f} min simulated",
            "",
            f"{'shopper':<14}{'via':>8}{'sent':>7}" + "".join(f"{c:>{11 if len(c) > 6 else 7}}" for c in cols),
        ]
        for name, row in self.per_shopper.items():
            flag = "  FAILED" if name in self.failed_shoppers else ""
            via = "beacons" if row.get("beacons") else "gps"
            lines.append(f"{name:<14}{via:>8}{row['fixes']:>7}"
                         + "".join(f"{row.get(c, 0):>{11 if len(c) > 6 else 7}}" for c in cols) + flag)
        lines.append(f"{'total':<14}{'':>8}{self.fixes_sent:>7}"
                     + "".join(f"{self.kinds.get(c, 0):>{11 if len(c) > 6 else 7}}" for c in cols))
        lines += [
            "",
            f"fixes: {self.fixes_sent} sent, {self.fixes_accepted} accepted, "
            f"{sum(self.fixes_dropped.values())} dropped"
            + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(self.fixes_dropped.items()))})"
               if self.fixes_dropped else ""),
            f"latency over {self.latencies} events: p50 {ms(self.latency_p50_ms)}, "
            f"p95 {ms(self.latency_p95_ms)}, max {ms(self.latency_max_ms)}",
            f"pushes shown from the websocket: {self.pushes}; app sent to background {self.backgrounded} time(s)",
            f"QR codes scanned: {self.qr_scans}; identity codes scanned by staff: {self.cards}",
            f"reconnects: {self.reconnects}, errors: {len(self.errors)}, failed shoppers: "
            f"{len(self.failed_shoppers)}",
        ]
        lines += [f"  ! {e}" for e in self.errors[:20]]
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more")
        return "\n".join(lines)
