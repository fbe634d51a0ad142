"""Beacon positioning accuracy on simulated walks through Harbourside: locate() vs nearest-beacon.

Walks come from the mobile stub's planner (A* on the walkable grid, escalators, stays in stores) on
zones/harbourside-mall.geojson; beacons from zones/harbourside-beacons.geojson. One scan per second
(--scan-s to space them out). Radio model: mobile_stub/radio.py (the same one the stub's beacon
shoppers hear), i.i.d. shadowing unless --corr-s. The estimator uses its defaults (n = 2.5) and knows
none of the radio's truths.

Samples outside the building (walking to and from the doors) feed the smoother but are not scored;
a sample without a fix counts as a wrong floor. Two locators hear the same scans, each with its own
per-device state: "locate()" (the defaults: 3-reading window and motion track) and "before" (the
locator without the track, RssiSmoother(max_readings=5, motion_filter=False), as it was before the
track). Baselines in the same run: the strongest beacon of the scan (raw), and of the smoothed
window ("before"'s 5 readings). "err<=acc": share of fixes whose true error is within accuracy_m (the
presence engine gates on it). "moving": true speed over 0.3 m/s. µs: per locate() call, both timed
in the same loop. The estimator's constants were tuned on seed 1; seeds 2 and 3 are held out.

    .venv/bin/python bench/beacons.py [--seed S ...] [--sigma DB ...] [--walks N] [--corr-s S]
                                      [--phone-db DB] [--scan-s S]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
import timeit
from pathlib import Path

import numpy as np

from mallfence.spatial.beacons import BeaconMap, RssiSmoother, beacons_from_geojson, locate
from mobile_stub.radio import DROPOUT, THRESHOLD_DBM, Radio, shadowing
from mobile_stub.venue import load_venue_file
from mobile_stub.walker import plan_walk

ZONES = Path(__file__).resolve().parent.parent / "zones"
TARGETS = {"median": 3.0, "p90": 6.0, "floor": 0.98}


LOCATORS = {"locate()": RssiSmoother, "before": lambda: RssiSmoother(max_readings=5, motion_filter=False)}
PER_LOCATOR = ("err", "acc", "ok_floor", "lsq", "used", "us")


def simulate(bmap: BeaconMap, radio: Radio, walks: list, sigma: float, seed: int, corr_s: float = 0.0,
             phone_db: float = 0.0) -> dict[str, dict[str, np.ndarray]]:
    """Per locator name, its columns (and the shared ones: moving, level, n_scan, the baselines')."""
    rng = np.random.default_rng(seed)
    keys = [b.key for b in bmap.beacons]
    edd = np.array([k.startswith("eddystone") for k in keys])
    shared: dict[str, list] = {k: [] for k in ("moving", "level", "n_scan", "err_nr", "floor_nr", "err_ns",
                                               "floor_ns")}
    own: dict[str, dict[str, list]] = {name: {k: [] for k in PER_LOCATOR} for name in LOCATORS}
    for w, samples in enumerate(walks):
        x = np.array([s.x for s in samples])
        y = np.array([s.y for s in samples])
        fl = np.array([s.floor for s in samples])
        rssi = radio.mean_rssi(x, y, fl) + phone_db + shadowing(rng, (len(samples), len(bmap)), sigma, corr_s)
        heard = (rssi >= THRESHOLD_DBM) & (rng.random(rssi.shape) >= DROPOUT)
        # the walk's true speed from its own samples, whatever their spacing
        dt = max(samples[1].t_offset_s - samples[0].t_offset_s, 1e-9) if len(samples) > 1 else 1.0
        speed = np.hypot(np.gradient(x), np.gradient(y)) / dt if len(samples) > 1 else np.zeros(1)
        states = {name: make() for name, make in LOCATORS.items()}
        t0 = w * 100_000.0
        for i, s in enumerate(samples):
            js = np.flatnonzero(heard[i])
            r = np.round(rssi[i, js])
            # Eddystone frames advertise their calibration; the app passes it on (same as the map's here)
            scan = [(keys[j], float(v), float(bmap.power_1m[j])) if edd[j] else (keys[j], float(v))
                    for j, v in zip(js.tolist(), r.tolist(), strict=True)]
            now = t0 + s.t_offset_s
            fixes = {}
            for name, state in states.items():
                c0 = time.perf_counter()
                fixes[name] = locate(scan, bmap, state, now)
                fixes[name, "us"] = (time.perf_counter() - c0) * 1e6
            if s.zone_hint == "outside":
                continue
            shared["n_scan"].append(len(scan))
            shared["moving"].append(speed[i] > 0.3)
            shared["level"].append(s.floor)
            for name, cols in own.items():
                fix = fixes[name]
                cols["us"].append(fixes[name, "us"])
                if fix is None:
                    cols["err"].append(np.nan)
                    cols["acc"].append(np.nan)
                    cols["ok_floor"].append(False)
                    cols["lsq"].append(False)
                    cols["used"].append(0)
                else:
                    cols["err"].append(math.hypot(fix.x - s.x, fix.y - s.y))
                    cols["acc"].append(fix.accuracy_m)
                    cols["ok_floor"].append(fix.level == s.floor)
                    cols["lsq"].append(fix.method == "lsq")
                    cols["used"].append(fix.beacons_used)
            # baselines: the strongest beacon of this scan (raw), and of the smoothed window (5 readings)
            smoothed = _strongest(bmap, states["before"], now)
            for tag, j in (("nr", int(js[np.argmax(r)]) if js.size else -1), ("ns", smoothed)):
                if j < 0:
                    shared[f"err_{tag}"].append(np.nan)
                    shared[f"floor_{tag}"].append(False)
                else:
                    shared[f"err_{tag}"].append(math.hypot(radio.bx[j] - s.x, radio.by[j] - s.y))
                    shared[f"floor_{tag}"].append(int(radio.level[j]) == s.floor)
    common = {k: np.array(v) for k, v in shared.items()}
    return {name: {**common, **{k: np.array(v) for k, v in cols.items()}} for name, cols in own.items()}


def _strongest(bmap: BeaconMap, state: RssiSmoother, now: float) -> int:
    keys, values, _ = state.estimates(now)
    return bmap.index[keys[int(np.argmax(values))]] if keys else -1


def stats(err: np.ndarray, floor_ok: np.ndarray, acc: np.ndarray | None = None) -> dict[str, float]:
    got = np.isfinite(err)
    e = err[got]
    out = {"median": float(np.median(e)) if e.size else math.nan, "p90": float(np.percentile(e, 90)) if e.size else
           math.nan, "floor": float(floor_ok.mean()), "fixes": float(got.mean())}
    if acc is not None:
        out["within"] = float((e <= acc[got]).mean()) if e.size else math.nan
    return out


def micro(bmap: BeaconMap, radio: Radio, n_beacons: int = 10, calls: int = 1_000, rounds: int = 25) -> dict[str, float]:
    """Best of ``rounds``, per locator: µs per locate() for a steady n-beacon scan (smoother windows
    full), on the L0 spine. The locators take short turns, so a busy machine slows both alike and the
    best round of each is one the other benchmarks left alone."""
    mean = radio.mean_rssi(np.array([20.0]), np.array([5.0]), np.array([0]))[0]
    top = np.argsort(-mean)[:n_beacons]
    scan = [(bmap.beacons[j].key, float(round(mean[j]))) for j in top.tolist()]
    states = {name: make() for name, make in LOCATORS.items()}
    for state in states.values():
        for k in range(10):
            locate(scan, bmap, state, float(k))
    best = dict.fromkeys(states, math.inf)
    now = 10.0
    for _ in range(rounds):
        for name, state in states.items():
            c0 = time.perf_counter()
            for k in range(calls):
                locate(scan, bmap, state, now + k)
            best[name] = min(best[name], time.perf_counter() - c0)
        now += calls
    return {name: b / calls * 1e6 for name, b in best.items()}


def python_speed() -> float:
    """µs for 1000 multiply-adds in a Python loop: to scale the µs above to another machine."""
    return min(timeit.repeat("s = 0.0\nfor i in range(1000): s += i * 1.5", number=200, repeat=5)) / 200 * 1e6


def row(name: str, st: dict[str, float], us: float | None) -> str:
    within = f"{st['within']:>9.0%}" if "within" in st else f"{'n/a':>9}"
    return (f"  {name:<26}{st['median']:>7.2f}{st['p90']:>7.2f}{st['floor']:>8.1%}{within}{st['fixes']:>7.1%}"
            + (f"{us:>8.1f}" if us is not None else f"{'':>8}"))


def report(sigma: float, both: dict[str, dict[str, np.ndarray]]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The lines for one sigma, and per locator its stats (with "us" and "met") for the summary."""
    res, old = both["locate()"], both["before"]
    ours, before = stats(res["err"], res["ok_floor"], res["acc"]), stats(old["err"], old["ok_floor"], old["acc"])
    nr, ns = stats(res["err_nr"], res["floor_nr"]), stats(res["err_ns"], res["floor_ns"])
    title = f"sigma {sigma:g} dB"
    head = f"  {title:<26}{'median':>7}{'p90':>7}{'floor':>8}{'err<=acc':>9}{'fix':>7}{'µs':>8}"
    lines = [head, row("locate()", ours, float(np.mean(res["us"]))),
             row("before (no track)", before, float(np.mean(old["us"]))),
             row("nearest beacon (raw scan)", nr, None), row("nearest beacon (smoothed)", ns, None)]
    ratio = f"{nr['median'] / ours['median']:>7.2f}{nr['p90'] / ours['p90']:>7.2f}"
    lines.append(f"  {'ratio nearest(raw)/ours':<26}{ratio}")
    for label, mask, cols in (("  moving", res["moving"], res), ("  standing", ~res["moving"], res),
                              ("  moving (before)", res["moving"], old), ("  standing (before)", ~res["moving"], old),
                              *((f"  level {lv}", res["level"] == lv, res) for lv in (-1, 0, 1))):
        if mask.any():
            lines.append(row(label, stats(cols["err"][mask], cols["ok_floor"][mask], cols["acc"][mask]), None)
                         + f"  n={int(mask.sum())}")
    lsq = res["lsq"]
    lines.append(f"  fits: {lsq.mean():.1%} least squares, {1 - lsq.mean() - (1 - np.isfinite(res['err']).mean()):.1%}"
                 f" centroid; median scan {np.median(res['n_scan']):.0f} beacons, p99 locate "
                 f"{np.percentile(res['us'], 99):.0f} µs (before {np.percentile(old['us'], 99):.0f} µs)")
    summary = {}
    for name, st, cols in (("locate()", ours, res), ("before", before, old)):
        fails = misses(st, nr)
        summary[name] = {**st, "us": float(np.mean(cols["us"])), "met": float(not fails)}
        lines.append(f"  targets ({name}): " + ("all met" if not fails else "MISSED: " + "; ".join(fails)))
    return lines, summary


def misses(st: dict[str, float], nearest_raw: dict[str, float]) -> list[str]:
    fails = [f"{k} {st[k]:.2f} vs {v}" for k, v in TARGETS.items() if (st[k] > v if k != "floor" else st[k] < v)]
    if nearest_raw["median"] <= st["median"]:
        fails.append("not better than nearest-beacon")
    return fails


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, nargs="+", default=[1], help="one run per seed (1 tunes; 2, 3 are held out)")
    ap.add_argument("--sigma", type=float, nargs="*", default=[4.0, 5.0, 6.0])
    ap.add_argument("--walks", type=int, default=12)
    ap.add_argument("--corr-s", type=float, default=0.0, help="shadowing correlation time (s); 0 = i.i.d.")
    ap.add_argument("--phone-db", type=float, default=0.0, help="phone receiver gain offset (dB), unknown to locate")
    ap.add_argument("--scan-s", type=float, default=1.0, help="seconds between scans (an app in the background)")
    args = ap.parse_args()
    venue = load_venue_file(ZONES / "harbourside-mall.geojson")
    data = json.loads((ZONES / "harbourside-beacons.geojson").read_text(encoding="utf-8"))
    bmap = BeaconMap(beacons_from_geojson(data, venue.projection))
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}; {args.walks} walks, "
          f"{len(bmap)} beacons; shadowing correlation {args.corr_s:g} s, phone offset {args.phone_db:g} dB, "
          f"a scan every {args.scan_s:g} s")
    summary: list[tuple[int, float, dict[str, dict[str, float]]]] = []
    for seed in args.seed:
        radio = Radio(bmap, np.random.default_rng(seed))
        walks = [plan_walk(venue, random.Random(seed * 1000 + w), sample_interval_s=args.scan_s)
                 for w in range(args.walks)]
        us = micro(bmap, radio)
        print(f"\nseed {seed}: {sum(len(w) for w in walks)} scans; locate() on a steady 10-beacon scan: "
              f"{us['locate()']:.1f} µs/call, before {us['before']:.1f} µs/call (this machine: "
              f"{python_speed():.0f} µs per 1000 Python multiply-adds)")
        for sigma in args.sigma:
            res = simulate(bmap, radio, walks, sigma, seed + int(sigma * 100), args.corr_s, args.phone_db)
            lines, st = report(sigma, res)
            print("\n".join(lines))
            summary.append((seed, sigma, st))
    head = f"{'median':>15}{'p90':>15}{'floor':>17}{'err<=acc':>15}{'µs':>15}  targets"
    print(f"\nsummary: before -> locate(){head}")
    for seed, sigma, st in summary:
        a, b = st["before"], st["locate()"]
        cells = "".join(f"{a[k]:>7.2f} ->{b[k]:>5.2f}" for k in ("median", "p90"))
        cells += f"{a['floor']:>8.1%} ->{b['floor']:>6.1%}{a['within']:>7.0%} ->{b['within']:>5.0%}"
        cells += f"{a['us']:>7.0f} ->{b['us']:>5.0f}"
        met = {1.0: "met", 0.0: "MISSED"}
        print(f"  seed {seed} sigma {sigma:g} dB{'':<10}{cells}  {met[a['met']]} -> {met[b['met']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
