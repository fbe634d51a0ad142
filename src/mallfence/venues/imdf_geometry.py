"""The two geometric decisions of the IMDF import, in local metres: entrances from doors, margins of narrow zones."""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

from mallfence.presence.defaults import settings_for

ENTRANCE_DEPTH_M = 4.0  # how far into the building an entrance zone reaches from its door
OUTLINE_TOLERANCE_M = 0.5  # a door this close to the level outline is an outside door
MIN_CORE_M = 0.5  # narrowest core (zone minus enter margin) worth keeping a kind's default margin for


def is_outside_door(door: BaseGeometry, outline: BaseGeometry) -> bool:
    """A door on its level's outline leads outside; any other is between two spaces inside."""
    return bool(outline.boundary.buffer(OUTLINE_TOLERANCE_M).covers(door))


def entrance_area(door: BaseGeometry, outline: BaseGeometry) -> BaseGeometry | None:
    """The floor behind an outside door: a band ENTRANCE_DEPTH_M deep inside the level (None if none is left)."""
    band = door.buffer(ENTRANCE_DEPTH_M, cap_style="flat").intersection(outline)
    area = shapely.union_all([p for p in shapely.get_parts(band) if p.geom_type == "Polygon"])
    return area if not area.is_empty and area.area >= 1.0 else None


def lowered_margin(zone: BaseGeometry, kind: str) -> float | None:
    """A smaller enter margin when ``kind``'s default leaves a core under MIN_CORE_M across, else None.

    IMDF carries no presence settings, and a 3 m escalator at the custom 1.5 m would keep a sliver
    no fix could ever land in. The lowered margin leaves about a third of the half-width as core.
    """
    margin = settings_for(kind).enter_margin_m
    widest = max(shapely.boundary(p).distance(polylabel(p, 0.05)) for p in shapely.get_parts(zone))
    if widest - margin >= MIN_CORE_M / 2:
        return None
    lowered = round(widest * 2 / 3, 1)
    return lowered if lowered >= 0.1 else None  # hopeless: the service's check names the feature
