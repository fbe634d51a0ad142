"""Decision engine throughput: zone events through campaign matching and the push budget, in one process.

10,000 shoppers (segments, consent, languages, opt-outs drawn at random), 200 active campaigns on the
sample mall's 100 zones (triggers, schedules, audiences, incentive tiers, priorities, cooldowns), and
50,000 zone events over a simulated weekend in venue time. Each event runs what the live listener runs
in memory: ``matching.match`` against the venue's campaign index, then ``rules.decide`` with the
shopper's budget ledger. Prints events/s, verdicts/s and per-event latency percentiles, against a peer
in the same run: the same engine with the index replaced by a scan of every campaign per event.

    .venv/bin/python bench/engagement.py [--shoppers 10000] [--campaigns 200] [--events 50000] [--seed 1]

The database side (reading a shopper's ledger, writing decisions and notifications) is measured by the
API tests' timings and bench/delivery.py, not here: this is the decision engine's own ceiling.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

from mallfence.engagement.matching import CampaignIndex, CampaignRule, Incentive, Profile, Text, Trigger, match
from mallfence.engagement.rules import Audience, Ledger, Policy, Schedule, decide
from mallfence.engagement.segments import SEGMENTS

MALL = Path(__file__).resolve().parent.parent / "zones" / "harbourside-mall.geojson"
TZ = ZoneInfo("Europe/Copenhagen")
TARGET = 20_000.0


def zones() -> list[int]:
    data = json.loads(MALL.read_text())
    return list(range(1, len(data["features"]) + 1))


def campaigns(n: int, zone_ids: list[int], rng: random.Random) -> list[CampaignRule]:
    out = []
    for i in range(1, n + 1):
        trigger = rng.choices(["enter", "dwell", "exit", "first_visit", "qr_scan"], [55, 20, 10, 10, 5])[0]
        hours = rng.choice([None, (dtime(10), dtime(14)), (dtime(16), dtime(20)), (dtime(11), dtime(22))])
        days = rng.choice([frozenset(), frozenset({5, 6}), frozenset({0, 1, 2, 3, 4})])
        schedule = Schedule(TZ, days=days, start=hours[0] if hours else None, end=hours[1] if hours else None)
        segments = frozenset(rng.sample(SEGMENTS, rng.randint(1, 3))) if rng.random() < 0.3 else frozenset()
        tiers = (Incentive("lapsing", "25 %", 0.6), Incentive("lapsing", "10 %", 0.3), Incentive("*", "5 %")) \
            if rng.random() < 0.3 else ()
        out.append(CampaignRule(
            id=i, name=f"c{i}", trigger=trigger, zone_ids=frozenset(rng.sample(zone_ids, rng.randint(1, 5))),
            schedule=schedule, text=Text("Offer {incentive}" if tiers else "Offer", "Body"),
            texts={"da": Text("Tilbud {incentive}" if tiers else "Tilbud", "Tekst")}, priority=rng.randint(0, 9),
            min_stay_s=rng.choice([None, 60.0]) if trigger in ("dwell", "exit") else None, segments=segments,
            visitors=rng.choice(["all", "all", "new", "returning"]), incentives=tiers,
            cooldown_s=rng.choice([0.0, 3600.0, 86400.0]), skus=("SKU-1",) if rng.random() < 0.1 else (),
        ))
    return out


class ScanIndex(CampaignIndex):
    """The peer: no (trigger, zone) index, every campaign looked at for every event."""

    def listening(self, kind: str, zone_id: int) -> tuple[CampaignRule, ...]:
        return tuple(r for r in self.rules if r.trigger == kind and zone_id in r.zone_ids)


def run(index: CampaignIndex, events: list[tuple[int, Trigger]], profiles: list[Profile],
        audiences: list[Audience], policy: Policy) -> tuple[float, int, int, list[float]]:
    ledgers = [Ledger() for _ in profiles]
    verdicts = sent = 0
    lat: list[float] = []
    clock = time.perf_counter
    t0 = clock()
    for who, trig in events:
        s = clock()
        candidates, skipped = match(trig, index, profiles[who])
        if candidates:
            for v in decide(candidates, audiences[who], ledgers[who], policy, trig.at):
                sent += v.sent
                verdicts += 1
        verdicts += len(skipped)
        lat.append(clock() - s)
    return clock() - t0, verdicts, sent, lat


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shoppers", type=int, default=10_000)
    ap.add_argument("--campaigns", type=int, default=200)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    zone_ids = zones()
    rules = campaigns(args.campaigns, zone_ids, rng)
    profiles = [Profile(f"s{i}", rng.choice(SEGMENTS), rng.choice([None, 0.35, 0.7]), rng.choice(["en", "da", None]))
                for i in range(args.shoppers)]
    audiences = [Audience(marketing_consent=rng.random() < 0.8,
                          opt_out=frozenset({"offers"}) if rng.random() < 0.05 else frozenset())
                 for _ in range(args.shoppers)]
    policy = Policy(tz=TZ)
    start = datetime(2026, 12, 5, 9, tzinfo=TZ).timestamp()  # Saturday morning
    span = 2 * 86400.0
    times = sorted(start + rng.random() * span for _ in range(args.events))
    kinds = ["enter", "dwell", "exit", "first_visit", "qr_scan"]
    events = [(rng.randrange(args.shoppers), Trigger(rng.choices(kinds, [45, 20, 25, 5, 5])[0], rng.choice(zone_ids),
                                                     t, i, rng.choice([None, 30.0, 120.0]), None))
              for i, t in enumerate(times)]
    index = CampaignIndex(rules)
    print(f"python {platform.python_version()}, {platform.machine()}; {args.shoppers} shoppers, {len(rules)} "
          f"campaigns on {len(zone_ids)} zones, {len(events)} events over 2 days (seed {args.seed})")
    results = {}
    for name, idx in (("indexed (ours)", index), ("scan every campaign", ScanIndex(rules))):
        best = None
        for _ in range(3):
            got = run(idx, events, profiles, audiences, policy)
            if best is None or got[0] < best[0]:
                best = got
        assert best is not None
        wall, verdicts, sent, lat = best
        results[name] = len(events) / wall
        print(f"  {name:<20} {len(events) / wall:>10,.0f} events/s  {verdicts / wall:>10,.0f} verdicts/s  "
              f"p50 {pct(lat, 0.5) * 1e6:6.1f} µs  p99 {pct(lat, 0.99) * 1e6:6.1f} µs  max "
              f"{max(lat) * 1e6:7.1f} µs  ({verdicts} verdicts, {sent} sent)")
    ours = results["indexed (ours)"]
    print(f"  ratio indexed / scan: {ours / results['scan every campaign']:.1f}x")
    print(f"  target >= {TARGET:,.0f} events/s in one process: {'met' if ours >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
