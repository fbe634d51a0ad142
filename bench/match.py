"""Point-in-zone matching throughput: VenueIndex.match vs shapely STRtree, a naive loop, PostGIS.

Random store-sized polygons (20 vertices, 5-20 m radius) in a 2 km square, random points over the
same square. Prints points/s per method, the ratio to ours, and checks the hit sets agree.

    .venv/bin/python bench/match.py [--points N] [--polygons N] [--seed S]

PostGIS: MALLFENCE_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres); a
scratch database ``mallfence_bench`` is created if missing and its table rebuilt on every run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import shapely
from shapely import STRtree

from mallfence.spatial.index import VenueIndex, ZoneShape
from mallfence.spatial.projection import LocalProjection

ANCHOR = (2.2384, 48.8924)  # La Defense, Paris
SIDE_M = 2_000.0
PG_URL = os.environ.get("MALLFENCE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "mallfence_bench"
PG_BATCH = 10_000


def versions() -> str:
    return (
        f"python {platform.python_version()}, shapely {shapely.__version__} "
        f"(GEOS {shapely.geos_version_string}), numpy {np.__version__}, "
        f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {platform.machine()}"
    )


def make_polygons(rng: np.random.Generator, n: int, proj: LocalProjection) -> np.ndarray:
    """n star-shaped 20-gons, radius 5-20 m, centres uniform in the square; WGS84."""
    centres = rng.uniform(0, SIDE_M, (n, 2))
    radius = rng.uniform(5.0, 20.0, (n, 1))
    k = 20
    angle = (np.arange(k) + rng.uniform(-0.3, 0.3, (n, k))) * (2 * np.pi / k)
    r = radius * rng.uniform(0.7, 1.0, (n, k))
    x = centres[:, :1] + r * np.cos(angle)
    y = centres[:, 1:] + r * np.sin(angle)
    x, y = np.concatenate([x, x[:, :1]], axis=1), np.concatenate([y, y[:, :1]], axis=1)
    lon, lat = proj.to_wgs84(x, y)
    polys = shapely.polygons(np.stack([lon, lat], axis=-1))
    assert shapely.is_valid(polys).all()
    return polys


def timed(fn: Callable[[], object], repeat: int = 3) -> tuple[float, float, object]:
    """Best CPU time and best wall time of ``repeat`` runs after one warm-up; and the last result.

    The work is single-threaded in this process, so CPU time is what one core does even when the
    machine is busy with other work; the wall clock is printed alongside.
    """
    out = fn()
    cpu, wall = float("inf"), float("inf")
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
    return cpu, wall, out


def pair_keys(point: np.ndarray, zone: np.ndarray, n_zones: int) -> np.ndarray:
    return np.sort(point.astype(np.int64) * (n_zones + 1) + zone.astype(np.int64))


def naive_loop(polys: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> int:
    hits = 0
    plist = list(polys)
    for x, y in zip(lon.tolist(), lat.tolist(), strict=True):
        pt = shapely.Point(x, y)
        for poly in plist:
            if poly.intersects(pt):
                hits += 1
    return hits


def postgis(polys: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> dict[str, object] | str:
    """Load the polygons, time ST_Intersects / ST_Contains joins; the result or why it was skipped."""
    try:
        import psycopg
        from psycopg import conninfo
    except ImportError as e:  # pragma: no cover
        return f"psycopg not importable: {e}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
                c.execute(f"CREATE DATABASE {PG_DB}")
        conn = psycopg.connect(conninfo.make_conninfo(PG_URL, dbname=PG_DB), autocommit=True)
    except psycopg.Error as e:
        return f"unreachable ({PG_URL}): {str(e).strip().splitlines()[0]}"
    out: dict[str, object] = {}
    with conn:
        server = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        out["version"] = f"{server}, PostGIS {conn.execute('SELECT postgis_lib_version()').fetchone()[0]}"
        conn.execute("DROP TABLE IF EXISTS bench_zones")
        conn.execute("CREATE TABLE bench_zones (id int PRIMARY KEY, geom geometry(Polygon, 4326) NOT NULL)")
        ewkb = shapely.to_wkb(shapely.set_srid(polys, 4326), hex=True, include_srid=True)
        with conn.cursor() as cur, cur.copy("COPY bench_zones (id, geom) FROM STDIN") as cp:
            for i, g in enumerate(ewkb.tolist()):
                cp.write_row((i, g))
        conn.execute("CREATE INDEX bench_zones_geom ON bench_zones USING gist (geom)")
        conn.execute("ANALYZE bench_zones")
        for name, pred in (("ST_Intersects", "ST_Intersects"), ("ST_Contains", "ST_Contains")):
            sql = (
                "SELECT p.i - 1, z.id FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY "
                "AS p(lon, lat, i) JOIN bench_zones z "
                f"ON {pred}(z.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))"
            )
            if name == "ST_Intersects":
                plan = conn.execute("EXPLAIN " + sql, (lon[:PG_BATCH].tolist(), lat[:PG_BATCH].tolist()))
                out["plan"] = " | ".join(r[0].strip() for r in plan.fetchall() if "Scan" in r[0] or "Loop" in r[0])

            def run(sql: str = sql) -> list[tuple[int, int]]:
                rows: list[tuple[int, int]] = []
                for s in range(0, lon.size, PG_BATCH):
                    cur = conn.execute(sql, (lon[s : s + PG_BATCH].tolist(), lat[s : s + PG_BATCH].tolist()))
                    rows += [(s + i, z) for i, z in cur.fetchall()]
                return rows

            # warm-up: one batch (catalog caches, index pages)
            conn.execute(sql, (lon[:PG_BATCH].tolist(), lat[:PG_BATCH].tolist())).fetchall()
            t = time.perf_counter()
            rows = run()
            out[name] = (time.perf_counter() - t, rows)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--polygons", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=20_240_601)
    ap.add_argument("--naive-sample", type=int, default=2_000)
    ap.add_argument("--pg-sample", type=int, default=200_000)
    a = ap.parse_args()

    print(versions())
    rng = np.random.default_rng(a.seed)
    proj = LocalProjection(*ANCHOR)
    polys = make_polygons(rng, a.polygons, proj)
    margin = 0.05 * SIDE_M
    lon, lat = proj.to_wgs84(
        rng.uniform(-margin, SIDE_M + margin, a.points), rng.uniform(-margin, SIDE_M + margin, a.points)
    )
    print(f"{a.polygons} polygons (20 vertices, 5-20 m), {a.points:,} points, 2 km square at {ANCHOR}, seed {a.seed}")

    t = time.perf_counter()
    vi = VenueIndex(*ANCHOR, [ZoneShape(i, None, p) for i, p in enumerate(polys)])
    print(f"VenueIndex build: {time.perf_counter() - t:.2f} s")

    # (method, points/s by CPU time of this process, points/s by wall clock, check)
    rows: list[tuple[str, float, float, str]] = []
    cpu, wall, hits = timed(lambda: vi.match(lon, lat))
    ours_rate = a.points / cpu
    ours_keys = pair_keys(hits.point, hits.zone, a.polygons)
    rows.append(("VenueIndex.match (ours)", ours_rate, a.points / wall, f"{hits.point.size:,} pairs"))

    tree = STRtree(polys)

    def strtree() -> tuple[np.ndarray, np.ndarray]:
        return tree.query(shapely.points(lon, lat), predicate="intersects")

    cpu, wall, (pi, gi) = timed(strtree)
    agree = "same pairs" if np.array_equal(pair_keys(pi, gi, a.polygons), ours_keys) else "PAIRS DIFFER"
    rows.append(("shapely STRtree.query + points()", a.points / cpu, a.points / wall,
                 f"{pi.size:,} pairs, {agree}"))

    ns = min(a.naive_sample, a.points)
    c, w = time.process_time(), time.perf_counter()
    naive_hits = naive_loop(polys, lon[:ns], lat[:ns])
    cpu, wall = time.process_time() - c, time.perf_counter() - w
    ours_naive = int(np.count_nonzero(hits.point < ns))
    rows.append((f"naive loop, no index ({ns:,} pts)", ns / cpu, ns / wall,
                 f"{naive_hits:,} hits vs ours {ours_naive:,}"))

    pg_sample = min(a.pg_sample, a.points)
    pg = postgis(polys, lon[:pg_sample], lat[:pg_sample])
    pg_rate = None
    if isinstance(pg, str):
        print(f"PostGIS: skipped, {pg}")
    else:
        print(f"PostGIS: {pg['version']}; plan: {pg['plan']}")
        ours_sample = ours_keys[ours_keys < pg_sample * (a.polygons + 1)]
        for name in ("ST_Intersects", "ST_Contains"):
            secs, prs = pg[name]  # type: ignore[misc]
            keys = pair_keys(np.array([p for p, _ in prs]), np.array([z for _, z in prs]), a.polygons)
            same = "same pairs" if np.array_equal(keys, ours_sample) else "PAIRS DIFFER"
            rate = pg_sample / secs  # server-side work: wall clock only
            rows.append((f"PostGIS {name} ({pg_sample:,} pts)", rate, rate,
                         f"{len(prs):,} pairs vs ours {ours_sample.size:,}, {same}"))
            if name == "ST_Intersects":
                pg_rate = rate

    print()
    print(f"{'method':<40} {'points/s':>12} {'ours is':>8} {'(wall)':>12}   check")
    print("-" * 110)
    for name, rate, rate_wall, note in rows:
        print(f"{name:<40} {rate:>12,.0f} {ours_rate / rate:>7.1f}x {rate_wall:>12,.0f}   {note}")
    print("points/s by CPU time of this process (one core); PostGIS rows: wall clock, 10,000-point "
          "batches over a local socket")
    print()
    ok_rate = ours_rate >= 3e6
    print(f"target ours >= 3,000,000 points/s: {ours_rate:,.0f} -> {'MET' if ok_rate else 'NOT MET'}")
    if pg_rate is None:
        print("target ours >= 30x PostGIS: not measured (PostGIS skipped)")
    else:
        ratio = ours_rate / pg_rate
        print(f"target ours >= 30x PostGIS ST_Intersects: {ratio:.0f}x -> {'MET' if ratio >= 30 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
