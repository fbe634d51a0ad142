"""Generate Harbourside's sample beacon layout and QR codes from zones/harbourside-mall.geojson.

Run from the repository root:  .venv/bin/python zones/beacons.py

Writes harbourside-beacons.geojson (Point per beacon, WGS84, 7 dp) and harbourside-qr.json. Every
device is fictional. Deterministic: fixed iteration order and a seeded RNG for calibration spread.
Placement, per level, in this order (a candidate within MIN_GAP_M of an earlier beacon is skipped):
entrances, escalator and lift landings, corridor centre lines every ~10 m, stores over 150 m² and the
food court at one per ~100 m² on a grid, a 20 m lattice in the car park.
Corridor beacons zig-zag a quarter of the corridor width either side of the centre line: beacons in a
straight row constrain position along the row only, and a trilateration across the corridor then
rests on the shop beacons behind walls.
The car park gets 48 beacons, not "a few": a beacon is heard to ~15-25 m at the -95 dBm threshold, so
a sparse lattice (45 m, 14 beacons) leaves a third of the car park deaf, and there the beacons of the
shops above, heard through the slab, win the floor vote (bench/beacons.py: 58 % right floor on P1).
Like zones/generate.py, the output is validated as rendered; on a problem nothing is written, exit 1.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from shapely.geometry import Point, box, shape

from mallfence.spatial.beacon_keys import (
    EDDYSTONE_LOSS_0_TO_1M_DB,
    eddystone_key,
    eddystone_power_1m,
    ibeacon_key,
)
from mallfence.spatial.beacons import BeaconMap, beacons_from_geojson
from mallfence.spatial.projection import LocalProjection

HERE = Path(__file__).resolve().parent
MALL = HERE / "harbourside-mall.geojson"
OUT_BEACONS, OUT_QR = HERE / "harbourside-beacons.geojson", HERE / "harbourside-qr.json"
VENUE_UUID = "7b1e4f0c-5a2d-4c8e-9f3b-2d6a8e1c0b54"  # invented; one UUID per venue, major = level + 10
EDDYSTONE_NS = hashlib.sha1(b"halvard-and-co.example").hexdigest()[:20]  # truncated hash of a domain
EDDYSTONE_STORES = ("L0-U001", "L1-U001")  # the department store runs its own Eddystone fleet
SPACING_M, STORE_MIN_M2, M2_PER_BEACON, PARKING_SPACING_M, MIN_GAP_M = 10.0, 150.0, 100.0, 20.0, 3.0
POWER_1M = {"corridor": -59.0, "landing": -60.0, "entrance": -61.0, "store": -62.0, "parking": -64.0}


def load_zones(data: dict, proj: LocalProjection) -> list[dict]:
    out = []
    for f in data["features"]:
        p = f["properties"]
        g = proj.geometry_to_local(shape(f["geometry"]))
        if p.get("radius_m"):
            g = g.buffer(float(p["radius_m"]), quad_segs=16)
        out.append({"id": p["external_id"], "kind": p["kind"], "level": p["level"], "tags": p["tags"], "geom": g,
                    "name": p["name"]})
    return out


def rectangles(poly) -> list:
    """An axis-aligned rectilinear polygon as maximal vertical-slab rectangles (T-shape -> 3)."""
    xs = sorted({round(x, 6) for x, _ in poly.exterior.coords})
    _, miny, _, maxy = poly.bounds
    merged: list[list] = []
    for x0, x1 in itertools.pairwise(xs):
        part = poly.intersection(box(x0 + 0.01, miny - 1, x1 - 0.01, maxy + 1))  # inset: walls on x0/x1 add slivers
        ivals = sorted((round(g.bounds[1], 6), round(g.bounds[3], 6)) for g in getattr(part, "geoms", [part])
                       if g.area > 0)
        if merged and merged[-1][2] == ivals:
            merged[-1][1] = x1
        else:
            merged.append([x0, x1, ivals])
    return [box(x0, a, x1, b) for x0, x1, iv in merged for a, b in iv]


def centre_line(rect) -> list[tuple[float, float]]:
    """Points every ~SPACING_M along a rectangle's long axis, alternating a quarter width either side."""
    x0, y0, x1, y1 = rect.bounds
    along_x = (x1 - x0) >= (y1 - y0)
    length, width = (x1 - x0, y1 - y0) if along_x else (y1 - y0, x1 - x0)
    n = max(1, round(length / SPACING_M))
    pts = []
    for k in range(n):
        s = (k + 0.5) * length / n
        off = width / 4 * (1 if k % 2 else -1) if width >= 6 else 0.0
        pts.append((x0 + s, (y0 + y1) / 2 + off) if along_x else ((x0 + x1) / 2 + off, y0 + s))
    return pts


def grid_in(geom, m2_per_point: float, nested: list) -> list[tuple[float, float]]:
    """About area / m2_per_point points (at least one) on a grid over the bounds, kept inside the zone.

    Points within 1 m of a zone nested in this one (a kiosk in the food court) are dropped: on its wall
    the "zone it sits in" would flip with rounding.
    """
    x0, y0, x1, y1 = geom.bounds
    n = max(1, round(geom.area / m2_per_point))
    nx = max(1, round((n * (x1 - x0) / (y1 - y0)) ** 0.5))
    ny = max(1, round(n / nx))
    pts = [(x0 + (i + 0.5) * (x1 - x0) / nx, y0 + (j + 0.5) * (y1 - y0) / ny) for j in range(ny) for i in range(nx)]
    inner = geom.buffer(-0.5)
    inside = [p for p in pts if inner.covers(Point(p)) and all(o.distance(Point(p)) > 1.0 for o in nested)]
    if not inside:
        p = geom.representative_point()
        inside = [(p.x, p.y)]
    return inside


def candidates(zones: list[dict]) -> list[tuple[str, int, float, float]]:
    """(role, level, x, y) in placement order."""
    out: list[tuple[str, int, float, float]] = []
    on = {lv: [z for z in zones if z["level"] == lv] for lv in sorted({z["level"] for z in zones} - {None})}
    for lv, zs in on.items():
        out += [("entrance", lv, *c) for z in zs if z["kind"] == "entrance" for c in _centre(z)]
        out += [("landing", lv, *c) for z in zs if {"escalator", "lift"} & set(z["tags"]) for c in _centre(z)]
        out += [("corridor", lv, *p) for z in zs if z["kind"] == "corridor"
                for r in rectangles(z["geom"]) for p in centre_line(r)]
        out += [("store", lv, *p) for z in zs if z["kind"] in ("store", "food_court") and z["geom"].area > STORE_MIN_M2
                for p in grid_in(z["geom"], M2_PER_BEACON, _nested(z, zs))]
        for z in (z for z in zs if z["kind"] == "parking"):
            x0, y0, x1, y1 = z["geom"].bounds
            core = z["geom"].buffer(-8.0)
            out += [("parking", lv, float(x), float(y)) for y in np.arange(y0 + 20, y1, PARKING_SPACING_M)
                    for x in np.arange(x0 + 20, x1, PARKING_SPACING_M) if core.covers(Point(x, y))]
    return out


def _nested(z: dict, same_level: list[dict]) -> list:
    return [o["geom"] for o in same_level if o is not z and o["geom"].area < z["geom"].area
            and o["geom"].intersection(z["geom"]).area > 0]


def _centre(z: dict) -> list[tuple[float, float]]:
    c = z["geom"].centroid
    return [(c.x, c.y)]


def zone_of(zones: list[dict], level: int, x: float, y: float) -> str | None:
    """The most specific (smallest) zone covering the point on its level, or a venue-wide one."""
    hits = [z for z in zones if z["level"] in (level, None) and z["geom"].covers(Point(x, y))]
    return min(hits, key=lambda z: (z["level"] is None, z["geom"].area))["id"] if hits else None


def build(data: dict) -> tuple[dict, list[str]]:
    """The FeatureCollection, and each beacon's placement role (for the summary)."""
    proj = LocalProjection(*data["venue"]["anchor"])
    zones = load_zones(data, proj)
    short = {lv["ordinal"]: lv["short_name"] for lv in data["levels"]}
    rng = random.Random(20240611)
    placed: list[tuple[str, int, float, float]] = []
    for role, lv, x, y in candidates(zones):
        if all(lv != q[1] or (x - q[2]) ** 2 + (y - q[3]) ** 2 >= MIN_GAP_M**2 for q in placed):
            placed.append((role, lv, x, y))
    features, minors, seq = [], Counter(), Counter()
    for role, lv, x, y in placed:
        zone = zone_of(zones, lv, x, y)
        seq[lv] += 1
        spread = rng.uniform(-1.0, 1.0)  # unit-to-unit variation of the same hardware model
        if zone in EDDYSTONE_STORES:
            tx0 = round(POWER_1M[role] + EDDYSTONE_LOSS_0_TO_1M_DB + spread)  # frames carry 0 m power
            ns, inst = EDDYSTONE_NS, f"{lv + 10:04x}{seq[lv]:08x}"
            ids = {"key": eddystone_key(ns, inst), "kind": "eddystone", "namespace": ns, "instance": inst}
            power = eddystone_power_1m(tx0)
        else:
            minors[lv] += 1
            ids = {"key": ibeacon_key(VENUE_UUID, lv + 10, minors[lv]), "kind": "ibeacon", "uuid": VENUE_UUID,
                   "major": lv + 10, "minor": minors[lv]}
            power = round(min(-59.0, max(-65.0, POWER_1M[role] + spread)), 1)
        lon, lat = proj.to_wgs84(np.array([x]), np.array([y]))
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(float(lon[0]), 7), round(float(lat[0]), 7)]},
            "properties": {**ids, "level": lv, "power_1m": power, "zone_external_id": zone,
                           "external_id": f"{short[lv]}-BCN-{seq[lv]:03d}"},
        })
    fc = {"type": "FeatureCollection", "venue": {"slug": data["venue"]["slug"], "anchor": data["venue"]["anchor"]},
          "features": features}
    return fc, [role for role, *_ in placed]


def qr_codes(data: dict) -> dict:
    names = {f["properties"]["external_id"]: f["properties"]["name"] for f in data["features"]}
    codes = [("QR-L0-ENT-S", {"zone_external_id": "L0-ENT-S"}, "Main entrance: welcome and today's offers"),
             ("QR-L0-ENT-W", {"zone_external_id": "L0-ENT-W"}, "West entrance: mall map"),
             ("QR-L1-FOOD", {"zone_external_id": "L1-FOOD"}, "Food court table: order and pay"),
             ("QR-L0-PU-A", {"zone_external_id": "L0-PU-A"}, "Pickup point A desk: collect your order"),
             ("QR-L0-U003-TV55", {"store_external_id": "L0-U003", "sku": "VL-TV-55OLED-24"}, "55-inch OLED TV shelf"),
             ("QR-L0-U005-ATLAS", {"store_external_id": "L0-U005", "sku": "TB-9788740012345"}, "Harbour atlas shelf")]
    return {"venue": data["venue"]["slug"], "codes": [
        {"external_id": eid, "binding": b, "label": f"{names[b.get('store_external_id', '')]}: {label}"
         if "store_external_id" in b else label} for eid, b, label in codes]}


def validate(fc: dict, qr: dict, data: dict) -> list[str]:
    proj = LocalProjection(*data["venue"]["anchor"])
    zones = load_zones(data, proj)
    by_id = {z["id"]: z for z in zones}
    problems = []
    beacons = beacons_from_geojson(fc, proj)  # keys canonical, levels and powers sane
    BeaconMap(beacons)  # keys unique
    if len({f["properties"]["external_id"] for f in fc["features"]}) != len(fc["features"]):
        problems.append("beacon external_ids are not unique")
    for b, f in zip(beacons, fc["features"], strict=True):
        p = f["properties"]
        if not by_id["VENUE"]["geom"].covers(Point(b.x, b.y)):
            problems.append(f"{p['external_id']}: outside the venue")
        if zone_of(zones, b.level, b.x, b.y) != p["zone_external_id"]:
            problems.append(f"{p['external_id']}: zone changed by rounding")
        if not -65.0 <= b.power_1m <= -59.0:
            problems.append(f"{p['external_id']}: power_1m {b.power_1m} outside -65..-59")
    has = Counter(f["properties"]["zone_external_id"] for f in fc["features"])
    for z in zones:
        big = z["kind"] in ("store", "food_court") and z["geom"].area > STORE_MIN_M2
        if (big or z["kind"] == "entrance" or {"escalator", "lift"} & set(z["tags"])) and not has[z["id"]]:
            problems.append(f"{z['id']}: no beacon")
    for c in qr["codes"]:
        zid = c["binding"].get("zone_external_id") or c["binding"].get("store_external_id")
        if zid not in by_id or ("sku" in c["binding"]) != (by_id[zid]["kind"] == "store"):
            problems.append(f"{c['external_id']}: binding {c['binding']} does not match a zone of the right kind")
    return problems


def render(obj: dict) -> str:
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m[1].strip()) + "]", text) + "\n"


def main() -> int:
    data = json.loads(MALL.read_text(encoding="utf-8"))
    built, roles = build(data)
    texts = render(built), render(qr_codes(data))
    fc, qr = (json.loads(t) for t in texts)  # validate exactly what goes to disk
    problems = validate(fc, qr, data)
    counts = Counter((f["properties"]["level"], f["properties"]["kind"]) for f in fc["features"])
    placed = Counter((f["properties"]["level"], r) for f, r in zip(fc["features"], roles, strict=True))
    print(f"{len(fc['features'])} beacons, {len(qr['codes'])} QR codes")
    for lv in sorted({lv for lv, _ in counts}):
        where = ", ".join(f"{r} {n}" for (lv2, r), n in sorted(placed.items()) if lv2 == lv)
        print(f"  level {lv:>2}: ibeacon {counts[(lv, 'ibeacon')]:>3}  eddystone {counts[(lv, 'eddystone')]:>3}"
              f"   ({where})")
    for problem in problems:
        print("  PROBLEM:", problem)
    if problems:
        print("  -> FAILED, nothing written")
        return 1
    OUT_BEACONS.write_text(texts[0], encoding="utf-8")
    OUT_QR.write_text(texts[1], encoding="utf-8")
    print(f"  -> {OUT_BEACONS.name}, {OUT_QR.name}: ok, written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
