"""Does a device standing still near a store wall flap? Counts per 30 minutes, by noise model.

The store has the "store" defaults (margins 1.5 / 3.0 m, debounce 5 / 20 s). The device stands
d metres from the west wall (d > 0 inside) and reports one fix per second, accuracy 5 m, with
Gaussian noise sigma = 2 m per axis: either independent per fix (what tests/unit/test_presence.py
asserts on) or AR(1)-correlated in time with the same stationary sigma, which is closer to how GPS
and indoor positioning errors behave (rho = 0.9 per second ~ 10 s correlation time).

    .venv/bin/python bench/flapping.py [--seeds N] [--minutes M]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np
import shapely
from shapely.geometry import box

from mallfence.presence.defaults import DEFAULTS
from mallfence.presence.machine import DeviceState, observe
from mallfence.spatial.index import VenueIndex, ZoneShape
from mallfence.spatial.projection import LocalProjection

ANCHOR = (13.4, 52.5)
STORE = DEFAULTS["store"]
SIGMA = 2.0
ACCURACY = 5.0


def noise(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    e = rng.normal(0.0, SIGMA, (n, 2))
    if rho:
        out = np.empty_like(e)
        out[0] = e[0]
        k = np.sqrt(1 - rho * rho)
        for i in range(1, n):
            out[i] = rho * out[i - 1] + k * e[i]
        e = out
    return e


def run(vi: VenueIndex, proj: LocalProjection, d: float, rho: float, seed: int, n: int) -> tuple[int, int]:
    e = noise(np.random.default_rng(seed), n, rho)
    lon, lat = proj.to_wgs84(d + e[:, 0], 15.0 + e[:, 1])
    h = vi.evidence(lon, lat, None, np.full(n, ACCURACY))
    ev: list[dict[int, bool]] = [{} for _ in range(n)]
    for p, z, i in zip(h.point.tolist(), h.zone.tolist(), h.inside.tolist(), strict=True):
        ev[p][z] = i
    state, enters, exits = DeviceState(), 0, 0
    for t in range(n):
        for event in observe(state, 1_700_000_000.0 + t, ACCURACY, ev[t], {1: STORE}) or []:
            enters += event.kind == "enter"
            exits += event.kind == "exit"
    return enters, exits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--minutes", type=int, default=30)
    a = ap.parse_args()
    print(f"python {platform.python_version()}, shapely {shapely.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores")
    proj = LocalProjection(*ANCHOR)
    store = ZoneShape(1, None, proj.geometry_to_wgs84(box(0, 0, 40, 30)), STORE.enter_margin_m,
                      STORE.exit_margin_m)
    vi = VenueIndex(*ANCHOR, [store])
    n = a.minutes * 60
    print(f"store defaults {STORE}; sigma {SIGMA} m, accuracy {ACCURACY} m, 1 fix/s for {a.minutes} min, "
          f"{a.seeds} seeds per row")
    print()
    print(f"{'noise':<22} {'d (m)':>6} {'enters mean':>12} {'max':>4} {'exits mean':>11} {'max':>4} "
          f"{'runs >1 enter':>14}")
    print("-" * 80)
    for label, rho in (("iid", 0.0), ("AR(1) rho=0.9 (10 s)", 0.9), ("AR(1) rho=0.97 (33 s)", 0.97)):
        for d in (-1.0, 0.0, 1.0):
            res = np.array([run(vi, proj, d, rho, seed, n) for seed in range(a.seeds)])
            flappy = int(np.count_nonzero(res[:, 0] > 1))
            print(f"{label:<22} {d:>+6.1f} {res[:, 0].mean():>12.2f} {res[:, 0].max():>4} "
                  f"{res[:, 1].mean():>11.2f} {res[:, 1].max():>4} {flappy:>8}/{a.seeds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
