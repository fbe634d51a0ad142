"""Which zones hold which points: an R-tree per (venue, level), queried in bulk.

Boundary rule: a zone *covers* its boundary. A point exactly on a zone's edge is in the zone (and on a
wall shared by two stores it is in both); presence margins, not the boundary rule, decide when that
becomes an enter.

Why a cell table on top of the R-tree: querying shapely's STRtree needs a shapely Point per fix, and
creating those costs ~0.56 µs each, more than the whole match budget (bench/match.py prints both).
So at build time each index rasterises its zones through the R-tree into a grid of cells; a cell lists
the zones whose bounds it meets and whether the zone covers the cell entirely. A batch of fixes is
then bucketed with integer arithmetic in numpy, interior hits need no geometry test at all, and only
boundary cells go to a prepared-geometry test, vectorised over the whole batch.

A batch of one or a few fixes (a websocket message) is the other common case, and there numpy's
per-call overhead is the cost: ~100 µs for a one-point batch against ~5 µs for the same lookups in plain
Python over lists of the same table. The halo table also records, per (cell, zone), whether the zone's
core covers the cell or misses it, so most single points need no geometry test at all. Both paths give
the same pairs (tests/unit/test_index.py checks batches against points one at a time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from mallfence.spatial.projection import LocalProjection

MAX_CELLS = 1 << 20  # ~1 M cells per table; coarser cells above that
_BOX_CHUNK = 65_536
FEW = 16  # batches up to this many points take the plain-Python path


@dataclass(frozen=True, slots=True)
class ZoneShape:
    """What the index needs to know about one zone (geometry in WGS84, margins in metres)."""

    zone_id: int
    level: int | None  # IMDF-style ordinal; None means venue-wide
    polygon: BaseGeometry
    enter_margin_m: float = 0.0
    exit_margin_m: float = 0.0


@dataclass(frozen=True, slots=True)
class Hits:
    """Pairs (point index, zone id), sorted by point index; ``inside`` is per pair when asked for."""

    point: np.ndarray
    zone: np.ndarray
    inside: np.ndarray | None = None

    def per_point(self, n: int) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(n)]
        for p, z in zip(self.point.tolist(), self.zone.tolist(), strict=True):
            out[p].append(z)
        return out

    @staticmethod
    def empty(with_inside: bool = False) -> Hits:
        e = np.empty(0, dtype=np.int64)
        return Hits(e, e.copy(), np.empty(0, dtype=bool) if with_inside else None)


def _concat(parts: Sequence[tuple[np.ndarray, Hits]], with_inside: bool) -> Hits:
    """Merge hits computed on subsets (``idx`` maps subset positions back) into one sorted Hits."""
    parts = [(idx, h) for idx, h in parts if h.point.size]
    if not parts:
        return Hits.empty(with_inside)
    point = np.concatenate([idx[h.point] for idx, h in parts])
    zone = np.concatenate([h.zone for _, h in parts])
    order = np.argsort(point, kind="stable")
    inside = np.concatenate([h.inside for _, h in parts])[order] if with_inside else None  # type: ignore[misc]
    return Hits(point[order], zone[order], inside)


class CellTable:
    """Uniform grid over metric geometries: per cell the candidate geometries and full-cover flags."""

    def __init__(self, geoms: np.ndarray, tree: STRtree, cell_m: float, inner: np.ndarray | None = None):
        """``inner``: geometries aligned with ``geoms`` (each inside its own), for which the table also
        records per (cell, geometry) whether it covers the cell (``inner_covers``) or misses it entirely
        (``inner_misses``)."""
        self._geoms = geoms
        bounds = shapely.bounds(geoms)
        self.x0, self.y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        width = float(bounds[:, 2].max()) - self.x0
        height = float(bounds[:, 3].max()) - self.y0
        while (int(width // cell_m) + 1) * (int(height // cell_m) + 1) > MAX_CELLS:
            cell_m *= 1.5
        self.cell = cell_m
        self.nx, self.ny = int(width // cell_m) + 1, int(height // cell_m) + 1
        cells, cands, interior, in_covers, in_misses = [], [], [], [], []
        total = self.nx * self.ny
        # Boxes are a hair wider than their cells: ``query`` buckets a point by floor division, which
        # can land one ulp across a grid line from where the box edge was computed; an edge of a zone
        # lying on that line would otherwise be missed. Wider boxes only add candidates.
        eps = 1e-9 * max(1.0, abs(self.x0), abs(self.y0), width, height)
        for start in range(0, total, _BOX_CHUNK):
            ids = np.arange(start, min(total, start + _BOX_CHUNK))
            cx, cy = ids % self.nx, ids // self.nx
            boxes = shapely.box(
                self.x0 + cx * cell_m - eps, self.y0 + cy * cell_m - eps,
                self.x0 + (cx + 1) * cell_m + eps, self.y0 + (cy + 1) * cell_m + eps,
            )
            box_i, geom_i = tree.query(boxes, predicate="intersects")
            cells.append(ids[box_i])
            cands.append(geom_i)
            interior.append(shapely.covers(geoms[geom_i], boxes[box_i]))
            if inner is not None:
                in_covers.append(shapely.covers(inner[geom_i], boxes[box_i]))
                in_misses.append(~shapely.intersects(inner[geom_i], boxes[box_i]))
        cell_of = np.concatenate(cells)
        order = np.argsort(cell_of, kind="stable")
        self._cand = np.concatenate(cands)[order].astype(np.int64)
        self._interior = np.concatenate(interior)[order]
        self.inner_covers = np.concatenate(in_covers)[order] if inner is not None else None
        self.inner_misses = np.concatenate(in_misses)[order] if inner is not None else None
        self._offsets = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell_of, minlength=total), out=self._offsets[1:])
        # The same table as lists, for the few-points path (list indexing beats numpy scalars ~10x).
        self.cand_list: list[int] = self._cand.tolist()
        self.interior_list: list[bool] = self._interior.tolist()
        self.offsets_list: list[int] = self._offsets.tolist()

    def cell_of(self, x: float, y: float) -> int:
        """The cell holding one point, or -1 off the grid (NaN and inf included); as ``query`` buckets."""
        fx, fy = (x - self.x0) / self.cell, (y - self.y0) / self.cell
        if not (0.0 <= fx < self.nx and 0.0 <= fy < self.ny):
            return -1
        return math.floor(fy) * self.nx + math.floor(fx)

    def query(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, geometry index) for every geometry covering a point, sorted by point."""
        point, pos = self.query_pos(x, y)
        return point, self._cand[pos]

    def query_pos(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As ``query``, with the table position of each pair (``cand_list[pos]`` is the geometry)."""
        with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf points simply match nothing
            cx = np.floor((x - self.x0) / self.cell)
            cy = np.floor((y - self.y0) / self.cell)
            ok = (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)
        cell = np.where(ok, cy * self.nx + cx, 0).astype(np.int64)
        start = self._offsets[cell]
        count = np.where(ok, self._offsets[cell + 1] - start, 0)
        total = int(count.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        point = np.repeat(np.arange(x.size, dtype=np.int64), count)
        first = np.cumsum(count) - count
        pos = np.arange(total, dtype=np.int64) + np.repeat(start - first, count)
        geom = self._cand[pos]
        keep = self._interior[pos].copy()
        edge = ~keep
        keep[edge] = shapely.intersects_xy(self._geoms[geom[edge]], x[point[edge]], y[point[edge]])
        return point[keep], pos[keep]


def _cell_size(geoms: np.ndarray) -> float:
    """Half the median short side of the zones' bounds: most cells then sit wholly inside a zone."""
    b = shapely.bounds(geoms)
    short = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    return float(np.clip(np.median(short) / 2.0, 0.5, 50.0))


class ZoneIndex:
    """Immutable index of one (venue, level): zones, their presence cores and halos, in metres."""

    def __init__(self, shapes: Sequence[ZoneShape], projection: LocalProjection):
        self.zone_ids = np.array([s.zone_id for s in shapes], dtype=np.int64)
        geoms = np.array([projection.geometry_to_local(s.polygon) for s in shapes], dtype=object)
        enter = np.array([s.enter_margin_m for s in shapes], dtype=float)
        exit_ = np.array([s.exit_margin_m for s in shapes], dtype=float)
        self.enter_margin = enter
        self.geoms = geoms
        self.cores = shapely.buffer(geoms, -enter, quad_segs=4)
        self.halos = shapely.buffer(geoms, exit_, quad_segs=4)
        self.boundaries = shapely.boundary(geoms)
        for arr in (self.geoms, self.cores, self.halos, self.boundaries):
            shapely.prepare(arr)
        self.tree = STRtree(geoms)
        cell = _cell_size(geoms)
        self._zones = CellTable(geoms, self.tree, cell)
        self._halos = CellTable(self.halos, STRtree(self.halos), cell, inner=self.cores)
        t = self._halos
        assert t.inner_covers is not None and t.inner_misses is not None
        self._core_covers: list[bool] = t.inner_covers.tolist()
        self._core_misses: list[bool] = t.inner_misses.tolist()
        self._enter_list: list[float] = enter.tolist()
        self._zone_list: list[int] = self.zone_ids.tolist()

    def __len__(self) -> int:
        return int(self.zone_ids.size)

    def match(self, x: np.ndarray, y: np.ndarray) -> Hits:
        point, g = self._zones.query(x, y)
        return Hits(point, self.zone_ids[g])

    def evidence(self, x: np.ndarray, y: np.ndarray, accuracy: np.ndarray) -> Hits:
        """Zones whose halo covers each point; ``inside`` says the point is inside by the margin.

        A point counts as inside when it is deeper than the zone's enter margin, or when its whole
        accuracy circle is inside the zone (a precise fix need not wait for the margin).
        """
        point, pos = self._halos.query_pos(x, y)
        g = self._halos._cand[pos]
        px, py = x[point], y[point]
        assert self._halos.inner_covers is not None and self._halos.inner_misses is not None
        inside = self._halos.inner_covers[pos].copy()
        test = ~inside & ~self._halos.inner_misses[pos]
        inside[test] = shapely.intersects_xy(self.cores[g[test]], px[test], py[test])
        maybe = ~inside & (accuracy[point] < self.enter_margin[g])
        if maybe.any():
            sel = np.flatnonzero(maybe)
            sel = sel[shapely.intersects_xy(self.geoms[g[sel]], px[sel], py[sel])]
            if sel.size:
                depth = shapely.distance(self.boundaries[g[sel]], shapely.points(px[sel], py[sel]))
                inside[sel] = depth >= accuracy[point[sel]]
        return Hits(point, self.zone_ids[g], inside)

    def evidence_few(self, xs: Sequence[float], ys: Sequence[float], accuracy: Sequence[float],
                     out: tuple[list[int], list[int], list[bool]], idx: Sequence[int]) -> None:
        """``evidence`` for a few points as plain floats, appending (idx[k], zone id, inside) to ``out``."""
        t = self._halos
        cand, interior, offsets = t.cand_list, t.interior_list, t.offsets_list
        points, zones, insides = out
        for k, (x, y, acc) in enumerate(zip(xs, ys, accuracy, strict=True)):
            c = t.cell_of(x, y)
            if c < 0:
                continue
            for pos in range(offsets[c], offsets[c + 1]):
                g = cand[pos]
                if not interior[pos] and not shapely.intersects_xy(self.halos[g], x, y):
                    continue
                if self._core_covers[pos]:
                    inside = True
                elif self._core_misses[pos]:
                    inside = False
                else:
                    inside = bool(shapely.intersects_xy(self.cores[g], x, y))
                if not inside and acc < self._enter_list[g] and shapely.intersects_xy(self.geoms[g], x, y):
                    inside = bool(shapely.distance(self.boundaries[g], shapely.Point(x, y)) >= acc)
                points.append(idx[k])
                zones.append(self._zone_list[g])
                insides.append(inside)


class VenueIndex:
    """All zones of one venue: one ZoneIndex per level plus one for venue-wide zones."""

    def __init__(self, anchor_lon: float, anchor_lat: float, shapes: Iterable[ZoneShape]):
        self.projection = LocalProjection(anchor_lon, anchor_lat)
        by_level: dict[int | None, list[ZoneShape]] = {}
        for s in shapes:
            by_level.setdefault(s.level, []).append(s)
        self.levels: dict[int | None, ZoneIndex] = {
            level: ZoneIndex(group, self.projection) for level, group in by_level.items()
        }

    def __len__(self) -> int:
        return sum(len(z) for z in self.levels.values())

    def to_local(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.projection.to_local(lons, lats)

    def match(self, lons: np.ndarray, lats: np.ndarray, floors: np.ndarray | None = None) -> Hits:
        """Zones covering each point; a point with a floor (NaN = unknown) also gets that level's zones."""
        x, y = self.projection.to_local(lons, lats)
        floors = np.asarray(floors, dtype=float) if floors is not None else np.full(x.size, np.nan)
        parts: list[tuple[np.ndarray, Hits]] = []
        for level, index in self.levels.items():
            idx = np.arange(x.size) if level is None else np.flatnonzero(floors == level)
            if idx.size:
                parts.append((idx, index.match(x[idx], y[idx])))
        return _concat(parts, with_inside=False)

    def evidence(
        self, lons: np.ndarray, lats: np.ndarray, floors: np.ndarray | None, accuracy: np.ndarray
    ) -> Hits:
        """Presence evidence per point: zones whose halo covers it, with ``inside`` per pair."""
        x, y = self.projection.to_local(lons, lats)
        return self.evidence_local(x, y, floors, accuracy)

    def evidence_local(self, x: np.ndarray, y: np.ndarray, floors: np.ndarray | None, accuracy: np.ndarray | None
                       ) -> Hits:
        """``evidence`` for points already in the venue's local metres (``to_local``)."""
        n = len(x)
        if n > FEW:
            return self._vectorised(x, y, floors, accuracy)
        xs, ys = np.asarray(x, dtype=float).tolist(), np.asarray(y, dtype=float).tolist()
        fl = np.asarray(floors, dtype=float).tolist() if floors is not None else [math.nan] * n
        acc = np.asarray(accuracy, dtype=float).tolist() if accuracy is not None else [0.0] * n
        out: tuple[list[int], list[int], list[bool]] = ([], [], [])
        for level, index in self.levels.items():
            idx = range(n) if level is None else [i for i in range(n) if fl[i] == level]
            if idx:
                index.evidence_few([xs[i] for i in idx], [ys[i] for i in idx], [acc[i] for i in idx], out, idx)
        points, zones, insides = out
        if not points:
            return Hits.empty(with_inside=True)
        order = sorted(range(len(points)), key=points.__getitem__)  # stable: by point, levels in table order
        return Hits(np.array([points[i] for i in order], dtype=np.int64),
                    np.array([zones[i] for i in order], dtype=np.int64),
                    np.array([insides[i] for i in order], dtype=bool))

    def _vectorised(self, x: np.ndarray, y: np.ndarray, floors: np.ndarray | None, accuracy: np.ndarray | None
                    ) -> Hits:
        floors = np.asarray(floors, dtype=float) if floors is not None else np.full(x.size, np.nan)
        acc = np.asarray(accuracy, dtype=float) if accuracy is not None else np.zeros(x.size)
        parts: list[tuple[np.ndarray, Hits]] = []
        for level, index in self.levels.items():
            idx = np.arange(x.size) if level is None else np.flatnonzero(floors == level)
            if idx.size:
                parts.append((idx, index.evidence(x[idx], y[idx], acc[idx])))
        return _concat(parts, with_inside=True)
