"""Shared factories for the unit tests: a venue anchor, local-metre geometry, presence settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from mallfence.presence.machine import DeviceState, PresenceEvent, PresenceSettings, observe
from mallfence.spatial.index import Hits, VenueIndex, ZoneShape
from mallfence.spatial.projection import LocalProjection

ANCHOR = (13.404954, 52.520008)  # Berlin, Alexanderplatz
PROJ = LocalProjection(*ANCHOR)


def wgs(geom: BaseGeometry) -> BaseGeometry:
    """A geometry drawn in local metres around ANCHOR, as WGS84."""
    return PROJ.geometry_to_wgs84(geom)


def local(geom: BaseGeometry) -> BaseGeometry:
    """The exact local geometry the index works with (same float operations as the index)."""
    return PROJ.geometry_to_local(geom)


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(x0, y0, x1, y1)


def shape(
    zone_id: int,
    geom_m: BaseGeometry,
    level: int | None = None,
    enter: float = 0.0,
    exit_: float = 0.0,
) -> ZoneShape:
    """A ZoneShape from a geometry in local metres."""
    return ZoneShape(zone_id, level, wgs(geom_m), enter, exit_)


def venue(shapes: Iterable[ZoneShape]) -> VenueIndex:
    return VenueIndex(*ANCHOR, shapes)


def lonlat(xy: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Local metre points as WGS84 arrays."""
    a = np.asarray(xy, dtype=float).reshape(-1, 2)
    return PROJ.to_wgs84(a[:, 0], a[:, 1])


def vertices(geom: BaseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """The WGS84 vertices of a WGS84 geometry: points exactly on its boundary after projection."""
    c = shapely.get_coordinates(geom)
    return c[:, 0].copy(), c[:, 1].copy()


def pairs(h: Hits) -> set[tuple[int, int]]:
    return set(zip(h.point.tolist(), h.zone.tolist(), strict=True))


def settings(
    enter_margin_m: float = 1.5,
    exit_margin_m: float = 3.0,
    enter_debounce_s: float = 0.0,
    exit_debounce_s: float = 0.0,
    dwell_s: float | None = None,
    max_accuracy_m: float = 15.0,
) -> PresenceSettings:
    return PresenceSettings(
        enter_margin_m, exit_margin_m, enter_debounce_s, exit_debounce_s, dwell_s, max_accuracy_m
    )


Fix = tuple[float, float, Mapping[int, bool]]  # (ts, accuracy_m, evidence)
Ev = tuple  # (kind, zone, at[, duration[, reason]]) as compared in the tables


def brief(e: PresenceEvent) -> Ev:
    """An event as a short tuple for tables: exits keep duration and reason, dwells the duration."""
    if e.kind == "exit":
        return (e.kind.value, e.zone_id, e.at, e.duration_s, e.reason)
    if e.kind == "dwell":
        return (e.kind.value, e.zone_id, e.at, e.duration_s)
    return (e.kind.value, e.zone_id, e.at)


def play(
    fixes: Iterable[Fix],
    cfg: Mapping[int, PresenceSettings],
    state: DeviceState | None = None,
) -> list[Ev]:
    """Feed fixes through observe; all events as short tuples, in emission order."""
    state = state if state is not None else DeviceState()
    out: list[Ev] = []
    for ts, acc, ev in fixes:
        got = observe(state, ts, acc, ev, cfg)
        out.extend(brief(e) for e in got or [])
    return out
