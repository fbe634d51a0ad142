"""What the planner derives from a venue once: walkable areas, grids, level links, doors."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from mobile_stub.grid import LevelGrid
from mobile_stub.venue import Venue, Zone

WALKABLE_KINDS = frozenset({"corridor", "entrance", "food_court", "pickup"})
TARGET_KINDS = frozenset({"store", "department"})
OUTSIDE_CLEARANCE_M = 30.0  # venue exit margin (15 m) plus several sigmas of fix noise


@dataclass(frozen=True, slots=True)
class Link:
    """A way between two levels: the landing on the level left and the one arrived at."""

    mode: str  # "escalator" | "lift"
    src: Zone
    dst: Zone


@dataclass(frozen=True, slots=True)
class Door:
    """Where an entrance meets the outside: a point just inside it and a point well outside."""

    inside: tuple[float, float]
    outside: tuple[float, float] | None


@dataclass(slots=True)
class LevelPlan:
    """One level's zones, walkable geometry and grid."""

    ordinal: int
    zones: list[Zone]
    walkable: BaseGeometry
    interior: BaseGeometry  # everything but entrances and parking: what an outside path must not cross
    grid: LevelGrid


def _is_transit(z: Zone) -> bool:
    return z.kind == "custom" and (z.is_escalator or z.is_lift)


class FloorPlan:
    """Planner view of a venue, built once per Venue and cached on it."""

    def __init__(self, venue: Venue, cell_m: float = 1.0):
        self.venue = venue
        self.levels: dict[int, LevelPlan] = {}
        for ordinal, zones in venue.by_level().items():
            if ordinal is None:
                continue
            zones = [z for z in zones if z.kind != "venue"]
            if zones:
                self.levels[ordinal] = self._level(ordinal, zones, cell_m)
        active = [z for z in venue.zones if z.active and z.level in self.levels]
        self.targets = [z for z in active if z.kind in TARGET_KINDS]
        self.entrances = [z for z in active if z.kind == "entrance"]
        self.parking = [z for z in active if z.kind == "parking"]
        self.food_courts = [z for z in active if z.kind == "food_court"]
        self.pickups = [z for z in active if z.kind == "pickup"]
        shells = [z.geom for z in venue.zones if z.kind == "venue"]
        every = [lp.walkable.union(lp.interior) for lp in self.levels.values()]
        self.footprint = unary_union(shells or every)
        self.links = self._links([z for z in venue.zones if z.level in self.levels and _is_transit(z)])
        self._doors: dict[int, Door] = {}
        self._containers: dict[int, list[Zone]] = {}

    @staticmethod
    def _level(ordinal: int, zones: list[Zone], cell_m: float) -> LevelPlan:
        walk = [z.geom for z in zones if z.kind in WALKABLE_KINDS or _is_transit(z)]
        if not any(z.kind == "corridor" for z in zones):
            # a level without corridors (one big store with departments): its floor is walkable
            walk = [z.geom for z in zones]
        walkable = unary_union(walk) if walk else shapely.Polygon()
        interior = unary_union([z.geom for z in zones if z.kind not in ("entrance", "parking")])
        bounds = shapely.total_bounds([z.geom for z in zones])
        return LevelPlan(ordinal, zones, walkable, interior, LevelGrid(bounds, walkable, cell_m))

    @staticmethod
    def _links(transit: list[Zone]) -> dict[tuple[int, int], list[Link]]:
        """Pair each landing with the landing of the same footprint on every level it serves."""
        links: dict[tuple[int, int], list[Link]] = {}
        for a in transit:
            mode = "escalator" if a.is_escalator else "lift"
            served = set(a.connects)
            best: dict[int, tuple[float, Zone]] = {}
            for b in transit:
                if b.level == a.level or b.is_escalator != a.is_escalator:
                    continue
                assert a.level is not None and b.level is not None
                if mode == "escalator" and not ({a.level, b.level} <= served and a.level in b.connects):
                    continue
                if mode == "lift" and served and b.level not in served:
                    continue
                gap = a.geom.distance(b.geom)
                if gap > 2.0:
                    continue
                # the landing of the same escalator overlaps most; a neighbour's merely touches
                score = a.geom.intersection(b.geom).area - gap
                if b.level not in best or score > best[b.level][0]:
                    best[b.level] = (score, b)
            for level, (_, b) in sorted(best.items()):
                links.setdefault((a.level, level), []).append(Link(mode, a, b))  # type: ignore[arg-type]
        return links

    def route(self, a: int, b: int) -> list[int] | None:
        """Levels to pass from a to b (inclusive), escalators first, lifts if they are the only way."""
        for modes in (("escalator",), ("escalator", "lift")):
            prev: dict[int, int | None] = {a: None}
            queue = deque([a])
            while queue:
                cur = queue.popleft()
                if cur == b:
                    path = [cur]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])  # type: ignore[arg-type]
                    return path[::-1]
                for (s, d), lks in self.links.items():
                    if s == cur and d not in prev and any(lk.mode in modes for lk in lks):
                        prev[d] = cur
                        queue.append(d)
        return None

    def containers(self, target: Zone) -> list[Zone]:
        """Zones that hold most of a target (the store around a department), to route through."""
        hit = self._containers.get(target.id)
        if hit is None:
            lp = self.levels.get(target.level)  # type: ignore[arg-type]
            area = target.geom.area or 1.0
            hit = self._containers[target.id] = [
                z for z in (lp.zones if lp else [])
                if z is not target and z.kind not in WALKABLE_KINDS and z.kind != "parking"
                and z.geom.intersects(target.geom) and z.geom.intersection(target.geom).area > 0.5 * area
            ]
        return hit

    def door(self, entrance: Zone) -> Door:
        """The door of an entrance: its point farthest from the building, and a point outside."""
        hit = self._doors.get(entrance.id)
        if hit is None:
            hit = self._doors[entrance.id] = self._door(entrance)
        return hit

    def _door(self, entrance: Zone) -> Door:
        lp = self.levels[entrance.level]  # type: ignore[index]
        core = entrance.geom.buffer(-0.5)
        core = core if not core.is_empty else entrance.geom
        # the door is the part of the entrance nearest the building's outline
        outline = self.footprint.boundary
        ring = shapely.points(shapely.get_coordinates(core.boundary.segmentize(0.5)))
        door = ring[int(np.argmin(shapely.distance(outline, ring)))]
        inside = (door.x, door.y)
        clear = self.footprint.buffer(OUTSIDE_CLEARANCE_M)
        indoors = lp.walkable.union(entrance.geom).buffer(0.5)
        best: tuple[float, tuple[float, float]] | None = None
        for deg in range(0, 360, 5):
            ux, uy = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            ray = LineString([inside, (door.x + ux * 400, door.y + uy * 400)])
            within = ray.intersection(self.footprint)
            # a way out crosses only walkable floor inside the building, and leaves it soonest
            if not within.is_empty and not indoors.covers(within):
                continue
            out_len = ray.intersection(clear).length + 1.0
            if best is None or out_len < best[0]:
                best = (out_len, (door.x + ux * out_len, door.y + uy * out_len))
        return Door(inside, best[1] if best is not None else None)


def floor_plan(venue: Venue) -> FloorPlan:
    """The FloorPlan of a venue, built on first use and cached on the Venue."""
    fp = venue.cache.get("floorplan")
    if fp is None:
        fp = venue.cache["floorplan"] = FloorPlan(venue)
    return fp
