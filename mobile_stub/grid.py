"""A 1 m occupancy grid of one level and an A* search over it."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

SQRT2 = math.sqrt(2.0)
MARGIN_CELLS = 3  # never-free border, so neighbour lookups need no bounds checks
WALL_PENALTY = (0.8, 0.4)  # extra cost of cells 1 and 2 cells from a wall: people keep off walls
HEURISTIC_WEIGHT = 1.3  # mildly greedy A*: a few % longer paths, several times fewer expansions


class LevelGrid:
    """Cells of ``cell_m`` over one level; ``walkable`` is the rasterised walkable area."""

    def __init__(self, bounds: Sequence[float], walkable: BaseGeometry, cell_m: float = 1.0):
        minx, miny, maxx, maxy = bounds
        self.cell = cell_m
        self.x0 = math.floor(minx / cell_m) * cell_m - MARGIN_CELLS * cell_m
        self.y0 = math.floor(miny / cell_m) * cell_m - MARGIN_CELLS * cell_m
        self.nx = math.ceil((maxx - self.x0) / cell_m) + MARGIN_CELLS + 1
        self.ny = math.ceil((maxy - self.y0) / cell_m) + MARGIN_CELLS + 1
        self._masks: dict[int, tuple[tuple[slice, slice], np.ndarray] | None] = {}
        self.walkable = self.full_mask(walkable)
        self.penalty = self._wall_penalty(self.walkable)

    def _window(self, geom: BaseGeometry) -> tuple[slice, slice] | None:
        gx0, gy0, gx1, gy1 = geom.bounds
        i0 = max(MARGIN_CELLS, math.floor((gx0 - self.x0) / self.cell))
        j0 = max(MARGIN_CELLS, math.floor((gy0 - self.y0) / self.cell))
        i1 = min(self.nx - MARGIN_CELLS, math.ceil((gx1 - self.x0) / self.cell) + 1)
        j1 = min(self.ny - MARGIN_CELLS, math.ceil((gy1 - self.y0) / self.cell) + 1)
        if i1 <= i0 or j1 <= j0:
            return None
        return slice(j0, j1), slice(i0, i1)

    def _raster(self, geom: BaseGeometry) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """Cells whose centre the geometry covers, within the geometry's bounding window."""
        win = self._window(geom)
        if win is None:
            return None
        js, is_ = win
        xs = self.x0 + (np.arange(is_.start, is_.stop) + 0.5) * self.cell
        ys = self.y0 + (np.arange(js.start, js.stop) + 0.5) * self.cell
        gx, gy = np.meshgrid(xs, ys)
        # intersects_xy counts the boundary, so two zones sharing an edge share its cells
        return win, shapely.intersects_xy(geom, gx, gy)

    def zone_mask(self, key: int, geom: BaseGeometry) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """The windowed mask of one zone, cached by ``key`` (the zone id)."""
        if key not in self._masks:
            self._masks[key] = self._raster(geom)
        return self._masks[key]

    def full_mask(self, geom: BaseGeometry) -> np.ndarray:
        """A whole-grid mask of one geometry, rasterised part by part to keep windows small."""
        out = np.zeros((self.ny, self.nx), dtype=bool)
        for part in getattr(geom, "geoms", [geom]):
            hit = self._raster(part)
            if hit is not None:
                (js, is_), m = hit
                out[js, is_] |= m
        return out

    @staticmethod
    def _wall_penalty(free: np.ndarray) -> np.ndarray:
        """Per-cell extra cost for cells close to the edge of the walkable area."""
        penalty = np.zeros(free.shape, dtype=float)
        inner = free
        for cost in WALL_PENALTY:
            eroded = inner.copy()
            for dj, di in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
                eroded &= np.roll(np.roll(inner, dj, axis=0), di, axis=1)
            penalty[inner & ~eroded] = cost
            inner = eroded
        return penalty

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """The (column, row) of the cell holding a point."""
        return int((x - self.x0) // self.cell), int((y - self.y0) // self.cell)

    def centre(self, i: int, j: int) -> tuple[float, float]:
        """The centre of cell (column i, row j)."""
        return self.x0 + (i + 0.5) * self.cell, self.y0 + (j + 0.5) * self.cell

    def _snap(self, free: np.ndarray, x: float, y: float) -> int | None:
        """The flat index of the free cell nearest to a point, searching a few metres around."""
        i, j = self.cell_of(x, y)
        for r in (0, 1, 2, 4, 8):
            j0, j1 = max(0, j - r), min(self.ny, j + r + 1)
            i0, i1 = max(0, i - r), min(self.nx, i + r + 1)
            sub = free[j0:j1, i0:i1]
            if sub.any():
                jj, ii = np.nonzero(sub)
                cx = self.x0 + (ii + i0 + 0.5) * self.cell
                cy = self.y0 + (jj + j0 + 0.5) * self.cell
                k = int(np.argmin((cx - x) ** 2 + (cy - y) ** 2))
                return int((jj[k] + j0) * self.nx + ii[k] + i0)
        return None

    def leg_mask(self, extra: Sequence[tuple[int, BaseGeometry]]) -> np.ndarray:
        """The walkable mask plus extra zones (the zone left and the zone entered)."""
        free = self.walkable.copy()
        for key, geom in extra:
            hit = self.zone_mask(key, geom)
            if hit is not None:
                (js, is_), m = hit
                free[js, is_] |= m
        return free

    def find_path(
        self, free: np.ndarray, start: tuple[float, float], goal: tuple[float, float], tolerance: float = 0.3
    ) -> list[tuple[float, float]] | None:
        """Waypoints from start to goal through free cells, simplified; None if unreachable."""
        s = self._snap(free, *start)
        g = self._snap(free, *goal)
        if s is None or g is None:
            return None
        cells = astar(free.ravel().tolist(), self.penalty.ravel().tolist(), self.nx, s, g)
        if cells is None:
            return None
        pts = [start] + [self.centre(c % self.nx, c // self.nx) for c in cells[1:-1]] + [goal]
        if len(pts) <= 2:
            return pts
        line = LineString(pts).simplify(tolerance, preserve_topology=False)
        return [(float(x), float(y)) for x, y in line.coords]


def astar(free: list[bool], penalty: list[float], nx: int, start: int, goal: int) -> list[int] | None:
    """8-connected weighted A* on a flat grid without corner cutting; the cells from start to goal."""
    if start == goal:
        return [start]
    gx, gy = goal % nx, goal // nx
    moves = (
        (1, 1.0, 0, 0), (-1, 1.0, 0, 0), (nx, 1.0, 0, 0), (-nx, 1.0, 0, 0),
        (nx + 1, SQRT2, 1, nx), (nx - 1, SQRT2, -1, nx), (-nx + 1, SQRT2, 1, -nx), (-nx - 1, SQRT2, -1, -nx),
    )
    w = HEURISTIC_WEIGHT
    best: dict[int, float] = {start: 0.0}
    parent: dict[int, int] = {start: -1}
    heap: list[tuple[float, float, int]] = [(0.0, 0.0, start)]
    closed: set[int] = set()
    push, pop = heapq.heappush, heapq.heappop
    while heap:
        _, neg_cost, node = pop(heap)
        if node == goal:
            path = [node]
            while parent[node] >= 0:
                node = parent[node]
                path.append(node)
            return path[::-1]
        if node in closed:
            continue
        closed.add(node)
        cost = -neg_cost
        for step, base, ox, oy in moves:
            nb = node + step
            # a diagonal step needs both orthogonal neighbours free: no squeezing past a corner
            if not free[nb] or nb in closed or (ox and not (free[node + ox] and free[node + oy])):
                continue
            nc = cost + base + penalty[nb]
            if nc < best.get(nb, math.inf):
                best[nb] = nc
                parent[nb] = node
                dx, dy = abs(nb % nx - gx), abs(nb // nx - gy)
                h = (dx + dy) + (SQRT2 - 2.0) * min(dx, dy)
                push(heap, (nc + w * h, -nc, nb))
    return None
