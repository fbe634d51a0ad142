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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from mallfence.spatial.projection import LocalProjection

MAX_CELLS = 1 << 20  # ~1 M cells per table; coarser cells above that
_BOX_CHUNK = 65_536


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

    def __init__(self, geoms: np.ndarray, tree: STRtree, cell_m: float):
        self._geoms = geoms
        bounds = shapely.bounds(geoms)
        self.x0, self.y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        width = float(bounds[:, 2].max()) - self.x0
        height = float(bounds[:, 3].max()) - self.y0
        while (int(width // cell_m) + 1) * (int(height // cell_m) + 1) > MAX_CELLS:
            cell_m *= 1.5
        self.cell = cell_m
        self.nx, self.ny = int(width // cell_m) + 1, int(height // cell_m) + 1
        cells, cands, interior = [], [], []
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
        cell_of = np.concatenate(cells)
        order = np.argsort(cell_of, kind="stable")
        self._cand = np.concatenate(cands)[order].astype(np.int64)
        self._interior = np.concatenate(interior)[order]
        self._offsets = np.zeros(total + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell_of, minlength=total), out=self._offsets[1:])

    def query(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, geometry index) for every geometry covering a point, sorted by point."""
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
        return point[keep], geom[keep]


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
        self._halos = CellTable(self.halos, STRtree(self.halos), cell)

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
        point, g = self._halos.query(x, y)
        px, py = x[point], y[point]
        inside = shapely.intersects_xy(self.cores[g], px, py)
        maybe = ~inside & (accuracy[point] < self.enter_margin[g])
        if maybe.any():
            sel = np.flatnonzero(maybe)
            sel = sel[shapely.intersects_xy(self.geoms[g[sel]], px[sel], py[sel])]
            if sel.size:
                depth = shapely.distance(self.boundaries[g[sel]], shapely.points(px[sel], py[sel]))
                inside[sel] = depth >= accuracy[point[sel]]
        return Hits(point, self.zone_ids[g], inside)


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

    def _run(self, lons, lats, floors, accuracy, with_inside: bool) -> Hits:
        x, y = self.projection.to_local(lons, lats)
        floors = np.asarray(floors, dtype=float) if floors is not None else np.full(x.size, np.nan)
        acc = np.asarray(accuracy, dtype=float) if accuracy is not None else np.zeros(x.size)
        parts: list[tuple[np.ndarray, Hits]] = []
        for level, index in self.levels.items():
            if level is None:
                idx = np.arange(x.size)
            else:
                idx = np.flatnonzero(floors == level)
                if not idx.size:
                    continue
            if with_inside:
                parts.append((idx, index.evidence(x[idx], y[idx], acc[idx])))
            else:
                parts.append((idx, index.match(x[idx], y[idx])))
        return _concat(parts, with_inside)

    def match(self, lons: np.ndarray, lats: np.ndarray, floors: np.ndarray | None = None) -> Hits:
        """Zones covering each point; a point with a floor (NaN = unknown) also gets that level's zones."""
        return self._run(lons, lats, floors, None, with_inside=False)

    def evidence(
        self, lons: np.ndarray, lats: np.ndarray, floors: np.ndarray | None, accuracy: np.ndarray
    ) -> Hits:
        """Presence evidence per point: zones whose halo covers it, with ``inside`` per pair."""
        return self._run(lons, lats, floors, accuracy, with_inside=True)
