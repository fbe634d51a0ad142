"""Presence pipeline throughput: VenueIndex.evidence + presence.machine.observe, batch per tick.

10,000 devices random-walk (1.3 m/s, 3 m fix noise, accuracy 3-15 m) through a two-level mall of
~330 store-like zones, corridors, departments, entrances, a food court and a venue-wide outline.
Every tick each device sends one fix; the batch goes through ``evidence``, the hits are grouped per
fix, and ``observe`` runs per device with the zone's PresenceSettings from defaults.py.

    .venv/bin/python bench/presence.py [--devices N] [--ticks N] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections import Counter
from itertools import pairwise

import numpy as np
import shapely
from shapely.geometry import Point, box

from mallfence.presence.defaults import DEFAULTS
from mallfence.presence.machine import DeviceState, PresenceSettings, expire, observe
from mallfence.spatial.index import Hits, VenueIndex, ZoneShape
from mallfence.spatial.projection import LocalProjection

ANCHOR = (-73.9857, 40.7484)
W, H = 240.0, 160.0  # mall outline, metres
WALK = (-25.0, W + 25.0, -25.0, H + 25.0)  # devices may leave the building
EMPTY: dict[int, bool] = {}  # shared, never mutated (observe only reads evidence)


def versions() -> str:
    return (
        f"python {platform.python_version()}, shapely {shapely.__version__} "
        f"(GEOS {shapely.geos_version_string}), numpy {np.__version__}, "
        f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {platform.machine()}"
    )


def build_venue(rng: np.random.Generator) -> tuple[list[tuple[int, int | None, str, object]], Counter]:
    """(zone_id, level, kind, local polygon) for the whole mall."""
    zones: list[tuple[int, int | None, str, object]] = [(1, None, "venue", box(0, 0, W, H))]
    corridors_y = [(37, 43), (77, 83), (117, 123)]
    rows = [(10, 37), (43, 60), (60, 77), (83, 100), (100, 117), (123, 150)]
    for level in (0, 1):
        for y0, y1 in corridors_y:
            zones.append((len(zones) + 1, level, "corridor", box(10, y0, W - 10, y1)))
        zones.append((len(zones) + 1, level, "corridor", box(117, 10, 123, H - 10)))
        for y0, y1 in rows:
            for x_start, x_end in ((10, 117), (123, W - 10)):
                x = float(x_start)
                while x < x_end - 4:
                    wide = rng.random() < 0.05
                    w = min(30.0 if wide else float(rng.uniform(5, 12)), x_end - x)
                    zones.append((len(zones) + 1, level, "store", box(x, y0, x + w, y1)))
                    if wide and w > 20:  # an anchor store with two departments
                        for dx in (1.5, w / 2 + 0.5):
                            zones.append((len(zones) + 1, level, "department",
                                          box(x + dx, y0 + 1.5, x + dx + w / 2 - 2, y1 - 1.5)))
                    x += w
        if level == 1:
            zones.append((len(zones) + 1, 1, "food_court", Point(120, 80).buffer(14, quad_segs=8)))
    for cx, cy in ((0, 40), (W, 80), (120, 0), (120, H)):
        zones.append((len(zones) + 1, 0, "entrance", Point(cx, cy).buffer(4, quad_segs=4)))
    return zones, Counter(k for _, _, k, _ in zones)


# ------------------------------------------------------------------ grouping strategies
# Each turns one batch's Hits (sorted by point) into a list: fix index -> evidence dict.


def group_loop(h: Hits, n: int) -> list[dict[int, bool]]:
    out: list[dict[int, bool]] = [EMPTY] * n
    last, d = -1, EMPTY
    for p, z, i in zip(h.point.tolist(), h.zone.tolist(), h.inside.tolist(), strict=False):
        if p != last:
            d = out[p] = {}
            last = p
        d[z] = i
    return out


def group_searchsorted(h: Hits, n: int) -> list[dict[int, bool]]:
    bounds = np.searchsorted(h.point, np.arange(n + 1)).tolist()
    zl, il = h.zone.tolist(), h.inside.tolist()
    return [dict(zip(zl[a:b], il[a:b], strict=False)) if b > a else EMPTY
            for a, b in pairwise(bounds)]


def group_bincount(h: Hits, n: int) -> list[dict[int, bool]]:
    pl = list(zip(h.zone.tolist(), h.inside.tolist(), strict=False))
    out: list[dict[int, bool]] = []
    s = 0
    for k in np.bincount(h.point, minlength=n).tolist():
        if k:
            out.append(dict(pl[s : s + k]))
            s += k
        else:
            out.append(EMPTY)
    return out


def group_unique(h: Hits, n: int) -> list[dict[int, bool]]:
    out: list[dict[int, bool]] = [EMPTY] * n
    pts, first = np.unique(h.point, return_index=True)
    ends = np.append(first[1:], h.point.size)
    zl, il = h.zone.tolist(), h.inside.tolist()
    for p, a, b in zip(pts.tolist(), first.tolist(), ends.tolist(), strict=False):
        out[p] = dict(zip(zl[a:b], il[a:b], strict=False))
    return out


def group_np_split(h: Hits, n: int) -> list[dict[int, bool]]:
    cut = np.searchsorted(h.point, np.arange(1, n))
    return [dict(zip(z.tolist(), i.tolist(), strict=False)) if z.size else EMPTY
            for z, i in zip(np.split(h.zone, cut), np.split(h.inside, cut), strict=False)]


GROUPERS = {
    "plain loop over .tolist()": group_loop,
    "np.bincount counts + pair-list slices": group_bincount,
    "np.searchsorted bounds + zip slices": group_searchsorted,
    "np.unique starts + zip slices": group_unique,
    "np.split per point": group_np_split,
}


class Walkers:
    def __init__(self, rng: np.random.Generator, n: int):
        self.rng, self.n = rng, n
        self.x = rng.uniform(0, W, n)
        self.y = rng.uniform(0, H, n)
        self.heading = rng.uniform(0, 2 * np.pi, n)
        self.floor = rng.integers(0, 2, n).astype(float)
        self.offset = rng.uniform(0, 1, n)  # devices are not in lockstep

    def step(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r, n = self.rng, self.n
        self.heading += r.normal(0, 0.35, n)
        self.x += 1.3 * np.cos(self.heading)
        self.y += 1.3 * np.sin(self.heading)
        x0, x1, y0, y1 = WALK
        bounce_x = (self.x < x0) | (self.x > x1)
        bounce_y = (self.y < y0) | (self.y > y1)
        self.heading[bounce_x] = np.pi - self.heading[bounce_x]
        self.heading[bounce_y] = -self.heading[bounce_y]
        self.x, self.y = np.clip(self.x, x0, x1), np.clip(self.y, y0, y1)
        switch = r.random(n) < 0.002
        self.floor[switch] = 1.0 - self.floor[switch]
        floor = self.floor.copy()
        floor[r.random(n) < 0.02] = np.nan  # some fixes come without a floor
        acc = r.uniform(3.0, 15.0, n)
        return self.x + r.normal(0, 3.0, n), self.y + r.normal(0, 3.0, n), floor, acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--ticks", type=int, default=180, help="one fix per device per tick (1 s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-gc", action="store_true",
                    help="disable the cyclic GC during the run (it costs ~0.5 us/fix in grouping)")
    a = ap.parse_args()
    if a.no_gc:
        gc.disable()
    print(versions())
    rng = np.random.default_rng(a.seed)
    proj = LocalProjection(*ANCHOR)
    zones, kinds = build_venue(rng)
    cfg: dict[int, PresenceSettings] = {zid: DEFAULTS[kind] for zid, _, kind, _ in zones}
    shapes = [ZoneShape(zid, lv, proj.geometry_to_wgs84(g), cfg[zid].enter_margin_m, cfg[zid].exit_margin_m)
              for zid, lv, _, g in zones]
    t = time.perf_counter()
    vi = VenueIndex(*ANCHOR, shapes)
    print(f"venue: {len(zones)} zones {dict(kinds)}; index build {time.perf_counter() - t:.2f} s")
    print(f"{a.devices:,} devices x {a.ticks} ticks = {a.devices * a.ticks:,} fixes, seed {a.seed}, "
          f"cyclic GC {'off' if a.no_gc else 'on'}")

    walkers = Walkers(rng, a.devices)
    states = [DeviceState() for _ in range(a.devices)]
    t0 = 1_700_000_000.0
    events: Counter = Counter()
    wall = dict.fromkeys(("evidence", "group", "observe"), 0.0)
    cpu = dict.fromkeys(("evidence", "group", "observe"), 0.0)
    grouping: dict[str, float] = dict.fromkeys(GROUPERS, 0.0)
    pairs = sampled = 0
    n = a.devices

    def clock(stage: str, w0: float, c0: float) -> tuple[float, float]:
        w1, c1 = time.perf_counter(), time.process_time()
        wall[stage] += w1 - w0
        cpu[stage] += c1 - c0
        return w1, c1

    for tick in range(a.ticks):
        x, y, floor, acc = walkers.step()
        lon, lat = proj.to_wgs84(x, y)
        ts = (t0 + tick + walkers.offset).tolist()
        acc_l = acc.tolist()

        if tick % 10 == 5:  # side measurement of every grouping strategy (CPU time)
            h = vi.evidence(lon, lat, floor, acc)
            ref = group_loop(h, n)
            for name, grouper in GROUPERS.items():
                c = time.process_time()
                got = grouper(h, n)
                grouping[name] += time.process_time() - c
                assert got == ref, name
            sampled += n

        w, c = time.perf_counter(), time.process_time()
        h = vi.evidence(lon, lat, floor, acc)
        w, c = clock("evidence", w, c)
        evs = group_loop(h, n)
        w, c = clock("group", w, c)
        for state, t, ac, ev in zip(states, ts, acc_l, evs, strict=False):
            out = observe(state, t, ac, ev, cfg)
            if out:
                for e in out:
                    events[e.kind.value] += 1
        clock("observe", w, c)
        pairs += h.point.size

    for s in states:
        for e in expire(s):
            events[f"{e.kind.value} ({e.reason}, at end)"] += 1

    fixes = a.devices * a.ticks
    print()
    print(f"evidence pairs: {pairs:,} ({pairs / fixes:.2f} per fix)")
    print(f"{'stage':<34} {'CPU s':>7} {'share':>6} {'us/fix':>7} {'wall s':>8}")
    print("-" * 66)
    labels = {"evidence": "VenueIndex.evidence", "group": "group hits per fix (plain loop)",
              "observe": "observe, per device"}
    for key, label in labels.items():
        print(f"{label:<34} {cpu[key]:>7.2f} {cpu[key] / sum(cpu.values()):>6.0%} "
              f"{cpu[key] / fixes * 1e6:>7.2f} {wall[key]:>8.2f}")
    print(f"{'total':<34} {sum(cpu.values()):>7.2f} {'':>6} {sum(cpu.values()) / fixes * 1e6:>7.2f} "
          f"{sum(wall.values()):>8.2f}")
    print()
    rate_cpu, rate_wall = fixes / sum(cpu.values()), fixes / sum(wall.values())
    print(f"throughput: {rate_cpu:,.0f} fixes/s per CPU-second ({rate_wall:,.0f} by wall clock) "
          f"-> target >= 200,000: {'MET' if rate_cpu >= 200_000 else 'NOT MET'}")
    print("events: " + ", ".join(f"{k} {v:,}" for k, v in sorted(events.items())))
    print()
    print(f"grouping strategies, same hits, CPU us per fix ({sampled:,} fixes sampled):")
    for name, secs in sorted(grouping.items(), key=lambda kv: kv[1]):
        print(f"  {name:<40} {secs / sampled * 1e6:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
