"""A shopper's walk through a venue: itinerary, legs planned on the grid, samples in time."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.ops import unary_union

from mobile_stub.floorplan import FloorPlan, Link, floor_plan
from mobile_stub.venue import Venue, Zone

PARKING_START_P = 0.25  # share of shoppers who arrive by car when the venue has parking
FOOD_COURT_P = 0.4
PICKUP_P = 0.3
FLOOR_COST_M = 60.0  # a floor change feels like this much walking when choosing the next stop


@dataclass(frozen=True, slots=True)
class Sample:
    """Where the shopper truly is at ``t_offset_s`` seconds after the walk starts (local metres)."""

    t_offset_s: float
    x: float
    y: float
    floor: int | None
    zone_hint: str | None


@dataclass(frozen=True, slots=True)
class _Key:
    t: float
    x: float
    y: float
    floor: int
    hint: str


def _hint(z: Zone) -> str:
    return f"{z.kind}:{z.label}" if not z.is_escalator and not z.is_lift else f"transit:{z.label}"


class _Walk:
    """Builds the keyframes of one walk; the position is linear in time between keyframes."""

    def __init__(self, fp: FloorPlan, rng: random.Random):
        self.fp, self.rng = fp, rng
        self.keys: list[_Key] = []
        self.speed = rng.uniform(1.2, 1.4)
        self.zone: Zone | None = None  # the zone being left: its cells join the next leg's grid

    @property
    def here(self) -> tuple[float, float]:
        """The position at the last keyframe."""
        k = self.keys[-1]
        return k.x, k.y

    @property
    def floor(self) -> int:
        """The level at the last keyframe."""
        return self.keys[-1].floor

    def put(self, dt: float, x: float, y: float, floor: int | None = None, hint: str | None = None) -> None:
        """Append a keyframe ``dt`` seconds after the last one."""
        last = self.keys[-1] if self.keys else None
        t = (last.t if last else 0.0) + dt
        floor = floor if floor is not None else last.floor  # type: ignore[union-attr]
        self.keys.append(_Key(t, x, y, floor, hint if hint is not None else last.hint))  # type: ignore[union-attr]

    def pause(self, seconds: float, hint: str | None = None) -> None:
        """Stand still."""
        self.put(seconds, *self.here, hint=hint)

    def polyline(self, pts: list[tuple[float, float]], speed: float, hint: str) -> None:
        """Walk through waypoints at a constant speed."""
        for x, y in pts[1:]:
            d = math.hypot(x - self.here[0], y - self.here[1])
            if d > 1e-6:
                self.put(d / speed, x, y, hint=hint)

    def point_in(self, z: Zone, inset: float = 1.5) -> tuple[float, float]:
        """A random point inside a zone, away from its walls when the zone is big enough."""
        geom = z.geom
        for d in (inset, inset / 3):
            core = geom.buffer(-d)
            if not core.is_empty:
                geom = core
                break
        minx, miny, maxx, maxy = geom.bounds
        for _ in range(200):
            x, y = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
            if shapely.intersects_xy(geom, x, y):
                return x, y
        p = geom.representative_point()
        return p.x, p.y

    def leg(self, target: Zone, goal: tuple[float, float], hint: str) -> bool:
        """Walk on the current level to ``goal`` inside ``target``; False if there is no way."""
        lp = self.fp.levels[self.floor]
        extra = [target, *self.fp.containers(target)]
        if self.zone is not None and self.zone.level == self.floor:
            extra.append(self.zone)
        free = lp.grid.leg_mask([(z.id, z.geom) for z in extra])
        path = lp.grid.find_path(free, self.here, goal)
        if path is None:
            # drawn maps leave hairline gaps between zones; close them and try once more
            region = unary_union([lp.walkable, *(z.geom for z in extra)]).buffer(0.6)
            path = lp.grid.find_path(lp.grid.full_mask(region), self.here, goal)
        if path is None:
            return False
        self.polyline(path, self.speed * self.rng.uniform(0.95, 1.05), hint)
        self.zone = target
        return True

    def ride(self, link: Link) -> bool:
        """Walk onto an escalator or into a lift and leave it on the other level."""
        src, dst = link.src, link.dst
        if link.mode == "lift":
            c = src.geom.representative_point()
            if not self.leg(src, (c.x, c.y), f"walk:{src.label}"):
                return False
            self.pause(self.rng.uniform(10, 40), _hint(src))
            half = 4.0 * abs(dst.level - src.level)  # type: ignore[operator]
            self.put(half, *self.here, floor=dst.level)
            self.put(half, *self.here)
        else:
            a, b = _ends(src)
            if math.dist(self.here, b) < math.dist(self.here, a):
                a, b = b, a
            if not self.leg(src, a, f"walk:{src.label}"):
                return False
            exit_ = max(_ends(dst), key=lambda p: math.dist(p, a))
            ride = max(self.rng.uniform(13, 17), math.dist(a, exit_) / 1.5)
            mid = ((a[0] + exit_[0]) / 2, (a[1] + exit_[1]) / 2)
            self.put(ride / 2, *mid, hint=_hint(src))
            self.put(0.0, *mid, floor=dst.level)
            self.put(ride / 2, *exit_)
        self.zone = dst
        return True

    def to_level(self, level: int) -> bool:
        """Change floors by escalators (or lifts where they are the only way)."""
        route = self.fp.route(self.floor, level)
        if route is None:
            return False
        for nxt in route[1:]:
            links = self.fp.links[(self.floor, nxt)]
            best = [lk for lk in links if lk.mode == "escalator"] or links
            best.sort(key=lambda lk: math.dist(self.here, _centre(lk.src)))
            pick = best[0] if len(best) == 1 or self.rng.random() < 0.7 else best[1]
            if not self.ride(pick):
                return False
        return True

    def visit(self, z: Zone, stay: tuple[float, float], pauses: tuple[float, float]) -> bool:
        """Go into a zone and spend a while there, wandering a little."""
        if z.level != self.floor and not self.to_level(z.level):  # type: ignore[arg-type]
            return False
        if not self.leg(z, self.point_in(z), f"walk:{z.label}"):
            return False
        end = self.keys[-1].t + self.rng.uniform(*stay)
        hint = _hint(z)
        while self.keys[-1].t < end:
            self.pause(min(self.rng.uniform(*pauses), end - self.keys[-1].t), hint)
            if self.keys[-1].t >= end:
                break
            for _ in range(5):
                p = self.point_in(z, inset=1.0)
                if z.geom.covers(LineString([self.here, p])):
                    self.polyline([self.here, p], self.rng.uniform(0.4, 0.9), hint)
                    break
        return True


def _centre(z: Zone) -> tuple[float, float]:
    c = z.geom.centroid
    return c.x, c.y


def _ends(z: Zone) -> tuple[tuple[float, float], tuple[float, float]]:
    """The two ends of an escalator landing: its long axis, 1 m in from each short side."""
    box = np.asarray(z.geom.minimum_rotated_rectangle.exterior.coords)[:4]
    e1, e2 = box[1] - box[0], box[2] - box[1]
    axis, side = (e1, box[1] + e2 / 2) if np.hypot(*e1) >= np.hypot(*e2) else (e2, box[2] - e1 / 2)
    length = float(np.hypot(*axis))
    u = axis / length if length > 0 else axis
    inset = min(1.0, length / 4)
    far = side - u * inset
    near = side - u * (length - inset)
    return (float(near[0]), float(near[1])), (float(far[0]), float(far[1]))


def _start(w: _Walk) -> bool:
    """Arrive by car in the parking, or walk in through an entrance from outside; False if neither."""
    fp, rng = w.fp, w.rng
    if fp.parking and rng.random() < PARKING_START_P:
        lot = rng.choice(fp.parking)
        w.put(0.0, *w.point_in(lot, 3.0), floor=lot.level, hint=_hint(lot))
        w.pause(rng.uniform(10, 40))
        w.zone = lot
        return True
    if fp.entrances:
        ent = rng.choice(fp.entrances)
        door = fp.door(ent)
        if door.outside is not None:
            w.put(0.0, *door.outside, floor=ent.level, hint="outside")
            w.pause(rng.uniform(5, 15))
            w.polyline([door.outside, door.inside], w.speed, "outside")
            w.put(0.0, *door.inside, hint=_hint(ent))
        else:
            w.put(0.0, *door.inside, floor=ent.level, hint=_hint(ent))
        w.zone = ent
        return True
    return False


def _cost(w: _Walk, z: Zone) -> float:
    return math.dist(w.here, _centre(z)) + FLOOR_COST_M * abs((z.level or 0) - w.floor)


def _leave(w: _Walk, came_by_car: bool) -> None:
    """Back to the car, or out through a door and away far enough for the venue exit."""
    fp, rng = w.fp, w.rng
    if came_by_car and rng.random() < 0.85:
        lots = sorted(fp.parking, key=lambda z: _cost(w, z))
        if w.visit(lots[0], (20, 60), (10, 30)):
            return
    for ent in sorted(fp.entrances, key=lambda z: _cost(w, z) * rng.uniform(1.0, 1.5)):
        door = fp.door(ent)
        if ent.level != w.floor and not w.to_level(ent.level):  # type: ignore[arg-type]
            continue
        if not w.leg(ent, door.inside, f"walk:{ent.label}"):
            continue
        if door.outside is not None:
            w.polyline([door.inside, door.outside], w.speed, "outside")
            # stand at the car or the bus stop long enough for the venue's exit debounce
            w.pause(rng.uniform(130, 160), "outside")
        return


def plan_walk(venue: Venue, rng: random.Random, *, sample_interval_s: float = 1.0) -> list[Sample]:
    """A realistic walk through the venue, sampled every ``sample_interval_s``; same seed, same walk."""
    fp = floor_plan(venue)
    w = _Walk(fp, rng)
    if not _start(w):
        raise ValueError(f"venue {venue.slug!r} has neither entrances nor parking to start from")
    by_car = w.keys[0].hint.startswith("parking:")
    stops = rng.sample(fp.targets, min(len(fp.targets), rng.randint(2, 5)))
    todo = [(z, (60.0, 240.0), (5.0, 25.0)) for z in stops]
    if fp.food_courts and rng.random() < FOOD_COURT_P:
        todo.insert(rng.randint(1, len(todo)), (rng.choice(fp.food_courts), (240.0, 600.0), (60.0, 180.0)))
    pickup = rng.choice(fp.pickups) if fp.pickups and rng.random() < PICKUP_P else None
    while todo:
        # next stop: the nearest of the first few on the list, so floors are not crossed back and forth
        head = todo[:3]
        k = min(range(len(head)), key=lambda i: _cost(w, head[i][0]))
        z, stay, pauses = todo.pop(k)
        w.visit(z, stay, pauses)
    if pickup is not None:
        w.visit(pickup, (30.0, 120.0), (20.0, 60.0))
    _leave(w, by_car)
    return _sample(w.keys, sample_interval_s)


def _sample(keys: list[_Key], dt: float) -> list[Sample]:
    """Positions at every multiple of ``dt`` by linear interpolation between keyframes."""
    kt = np.array([k.t for k in keys])
    ts = np.arange(0.0, kt[-1] + 1e-9, dt)
    xs = np.interp(ts, kt, [k.x for k in keys])
    ys = np.interp(ts, kt, [k.y for k in keys])
    # the keyframe a sample belongs to: the last one at or before it (floor switches at a keyframe)
    idx = np.searchsorted(kt, ts, side="right") - 1
    # ... and the hint of the segment it lies on, which the keyframe ending the segment carries
    hints = [k.hint for k in keys[1:]] + [keys[-1].hint]
    return [
        Sample(round(float(t), 3), float(x), float(y), keys[i].floor, hints[i])
        for t, x, y, i in zip(ts, xs, ys, idx.tolist(), strict=True)
    ]
