"""Where is it in stock now: the stores holding a SKU, nearest first from the shopper, with a walking hint.

Distances are in the venue's local metric plane (``spatial.projection``): the straight line from the shopper
to the store's zone (0 inside it), plus ``FLOOR_CHANGE_M`` per level between them. Indoors the straight line
underestimates the walk a little and the floor change is the bigger cost, so the order this gives ("the shop
across the hall before the one upstairs") is what a shopper would choose; the figure is a hint, not a route.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.commerce.models import StockLevel
from mallfence.commerce.schemas import Origin, StockPlace, StoreBrief, WhereInStock
from mallfence.commerce.service import get_product, product_out
from mallfence.errors import Invalid, Issue
from mallfence.spatial.projection import LocalProjection
from mallfence.venues.models import Level, Store, Venue, Zone

# Walking to an escalator or lift, riding it and walking back: about a minute, i.e. ~40 m of walking.
FLOOR_CHANGE_M = 40.0
MAX_ORIGIN_DISTANCE_M = 5_000.0  # as for fixes: further away is another venue, or lon/lat swapped


@dataclass(frozen=True, slots=True)
class Spot:
    """A shopper's position in the venue's local plane."""

    x: float
    y: float
    floor: int | None


def walking_many(spot: Spot, areas: list[shapely.Geometry | None], levels: list[int | None],
                 proj: LocalProjection) -> list[float | None]:
    """Metres from ``spot`` to each WGS84 area on its level: the straight line (0 inside) plus a walk per floor
    changed; None for an unknown area. Projected and measured in one go: a venue has a few hundred stores,
    and one shapely call per store would cost more than the query."""
    present = [i for i, a in enumerate(areas) if a is not None]
    out: list[float | None] = [None] * len(areas)
    if not present:
        return out
    kx, ky = proj.metres_per_degree
    local = shapely.transform(np.array([areas[i] for i in present]), lambda c: np.column_stack(
        ((c[:, 0] - proj.lon0) * kx, (c[:, 1] - proj.lat0) * ky)))
    flat = shapely.distance(shapely.Point(spot.x, spot.y), local)
    for i, d in zip(present, flat.tolist(), strict=True):
        level = levels[i]
        floors = abs(spot.floor - level) if spot.floor is not None and level is not None else 0
        out[i] = d + floors * FLOOR_CHANGE_M
    return out


def rounded_m(distance_m: float) -> int:
    """Metres as a person says them: to 10 m below 100 m, to 50 m below 1 km, to 100 m beyond."""
    step = 10 if distance_m < 100 else 50 if distance_m < 1000 else 100
    return max(step, math.floor(distance_m / step + 0.5) * step)  # half up, as people round


def walk_hint(level_name: str | None, distance_m: float | None) -> str | None:
    """'Level 1, about 40 m'; 'Level 1, right here' inside or next to it; None without a distance."""
    if distance_m is None:
        return None
    how = "right here" if distance_m < 5 else f"about {rounded_m(distance_m)} m"
    return f"{level_name}, {how}" if level_name else how


def origin_spot(venue: Venue, *, lon: float | None, lat: float | None, floor: int | None) -> Spot | None:
    """The shopper's position in the venue's plane (None without one); Invalid for half a position or a far one."""
    if lon is None and lat is None:
        if floor is not None:
            raise Invalid(Issue(("query", "floor"), "floor needs lon and lat"))
        return None
    if lon is None or lat is None:
        raise Invalid(Issue(("query", "lat" if lat is None else "lon"), "give both lon and lat, or neither"))
    proj = LocalProjection(venue.anchor_lon, venue.anchor_lat)
    x, y = proj.to_local(np.array([lon]), np.array([lat]))
    spot = Spot(float(x[0]), float(y[0]), floor)
    if math.hypot(spot.x, spot.y) > MAX_ORIGIN_DISTANCE_M:
        raise Invalid(Issue(("query", "lon"), f"position is {math.hypot(spot.x, spot.y) / 1000:.1f} km from venue "
                                              f"{venue.slug!r}: wrong venue or lon/lat swapped?"))
    return spot


def where_in_stock(session: Session, *, venue: Venue, sku: str, lon: float | None = None, lat: float | None = None,
                   floor: int | None = None) -> WhereInStock:
    """Stores with ``sku`` in stock or low, nearest first from (lon, lat, floor) when given; stores that
    carry it but are out, apart."""
    spot = origin_spot(venue, lon=lon, lat=lat, floor=floor)
    product = get_product(session, venue=venue, sku=sku)
    rows = session.execute(
        select(StockLevel.level, StockLevel.quantity, StockLevel.updated_at, Store.id, Store.name, Store.zone_id,
               Zone.area, Level.ordinal, Level.name)
        .join(Store, Store.id == StockLevel.store_id)
        .outerjoin(Zone, Zone.id == Store.zone_id)
        .outerjoin(Level, Level.id == Zone.level_id)
        .where(StockLevel.product_id == product.id)).all()
    proj = LocalProjection(venue.anchor_lon, venue.anchor_lat)
    distances = walking_many(spot, [r.area for r in rows], [r.ordinal for r in rows], proj) \
        if spot is not None else [None] * len(rows)
    places: list[StockPlace] = []
    for (level, quantity, updated_at, store_id, store_name, zone_id, _, ordinal, level_name), far in zip(
            rows, distances, strict=True):
        distance = round(far, 1) if far is not None else None
        places.append(StockPlace(
            store=StoreBrief(id=store_id, name=store_name, zone_id=zone_id, level=ordinal, level_name=level_name),
            level=level, quantity=quantity, updated_at=updated_at, distance_m=distance,
            walk_hint=walk_hint(level_name, distance)))

    def order(p: StockPlace) -> tuple[object, ...]:
        # Nearest first; without a position (or for a store without a zone): by level, then name.
        return (p.distance_m is None, p.distance_m or 0.0, p.store.level is None, p.store.level or 0, p.store.name)

    places.sort(key=order)
    return WhereInStock(
        product=product_out(product), origin=Origin(lon=lon, lat=lat, floor=floor) if spot is not None else None,
        stores=[p for p in places if p.level != "out"], out_of_stock=[p for p in places if p.level == "out"])
