"""Zone geometry from GeoJSON: strict validation with messages a map author can act on.

GeoJSON (RFC 7946) is (lon, lat) in WGS84. A zone is a Polygon, a MultiPolygon, or a circle written
as a Point with a radius in metres. Every problem is reported with the path of the offending member,
so an import can name the feature and the ring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from mallfence.spatial.projection import LocalProjection

MAX_VERTICES = 2_000
MAX_RADIUS_M = 5_000.0
CIRCLE_QUAD_SEGS = 16  # 64-gon: the polygon is within 0.12 % of the true radius


@dataclass(frozen=True, slots=True)
class Problem:
    path: tuple[str | int, ...]
    message: str


class GeometryProblems(ValueError):
    """One or more problems with a geometry, each with the path of its member."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{'.'.join(map(str, p.path)) or 'geometry'}: {p.message}" for p in problems))


def _position(value: Any, path: tuple[str | int, ...], problems: list[Problem]) -> tuple[float, float] | None:
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        problems.append(Problem(path, "a position must be [longitude, latitude] (optionally with elevation)"))
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        problems.append(Problem(path, "a position must contain numbers only"))
        return None
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        problems.append(Problem(path, "coordinates must be finite numbers (no NaN or infinity)"))
        return None
    if not -180.0 <= lon <= 180.0:
        problems.append(Problem(path, f"longitude {lon} is outside -180..180"))
        return None
    if not -90.0 <= lat <= 90.0:
        problems.append(Problem(path, f"latitude {lat} is outside -90..90"))
        return None
    return lon, lat


def _ring(value: Any, path: tuple[str | int, ...], problems: list[Problem]) -> list[tuple[float, float]] | None:
    if not isinstance(value, list) or (value and not isinstance(value[0], list | tuple)):
        problems.append(Problem(path, "a linear ring must be an array of positions [[lon, lat], ...]"))
        return None
    if value and value[0] and isinstance(value[0][0], list | tuple):
        problems.append(Problem(path, "coordinates are nested one level too deep for this geometry type"))
        return None
    if len(value) < 4:
        problems.append(Problem(path, f"a linear ring needs at least 4 positions, got {len(value)}"))
        return None
    before = len(problems)
    ring = [_position(p, (*path, i), problems) for i, p in enumerate(value)]
    if len(problems) > before:
        return None
    if ring[0] != ring[-1]:
        problems.append(Problem(path, "linear ring is not closed: the first and last positions differ"))
        return None
    return ring  # type: ignore[return-value]


def _polygon(value: Any, path: tuple[str | int, ...], problems: list[Problem]) -> Polygon | None:
    if not isinstance(value, list) or not value:
        problems.append(Problem(path, "a polygon must be a non-empty array of linear rings"))
        return None
    rings = [_ring(r, (*path, i), problems) for i, r in enumerate(value)]
    if any(r is None for r in rings):
        return None
    return Polygon(rings[0], rings[1:])


def _vertex_count(geom: BaseGeometry) -> int:
    """Distinct vertices: every ring repeats its first position at the end."""
    polygons = shapely.get_parts(geom)
    rings = int(np.sum(shapely.get_num_interior_rings(polygons))) + len(polygons)
    return int(shapely.get_num_coordinates(geom)) - rings


def _positions_upper_bound(coords: Any, depth: int) -> int:
    """How many positions a coordinates array holds, by array lengths only (cheap on huge input)."""
    if depth == 0 or not isinstance(coords, list):
        return 1
    if depth == 1:
        return len(coords)
    return sum(_positions_upper_bound(c, depth - 1) for c in coords)


def parse_zone_geometry(geometry: Any, radius_m: float | None = None) -> BaseGeometry:
    """Validate a GeoJSON geometry and return it as shapely (WGS84); a Point needs ``radius_m``.

    Raises GeometryProblems naming every member that is wrong.
    """
    problems: list[Problem] = []
    if not isinstance(geometry, dict):
        raise GeometryProblems([Problem((), "geometry must be a GeoJSON object")])
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    path: tuple[str | int, ...] = ("coordinates",)
    depth = {"Polygon": 2, "MultiPolygon": 3}.get(kind or "", 0)
    if depth and _positions_upper_bound(coords, depth) > 2 * MAX_VERTICES:
        raise GeometryProblems([Problem(path, f"more than {MAX_VERTICES} vertices: over the limit")])
    if kind == "Polygon":
        geom = _polygon(coords, path, problems)
    elif kind == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise GeometryProblems([Problem(path, "a MultiPolygon needs at least one polygon")])
        parts = [_polygon(p, (*path, i), problems) for i, p in enumerate(coords)]
        geom = None if problems else MultiPolygon(parts)  # type: ignore[arg-type]
    elif kind == "Point":
        pos = _position(coords, path, problems)
        if radius_m is None:
            problems.append(Problem(("radius_m",), "a Point zone is a circle and needs radius_m"))
        elif (isinstance(radius_m, bool) or not isinstance(radius_m, int | float) or not math.isfinite(radius_m)
              or not 0 < radius_m <= MAX_RADIUS_M):
            problems.append(Problem(("radius_m",), f"radius_m must be > 0 and <= {MAX_RADIUS_M:g} metres"))
        if problems or pos is None:
            raise GeometryProblems(problems)
        return Point(pos)
    else:
        raise GeometryProblems(
            [Problem(("type",), f"unsupported geometry type {kind!r}: use Polygon, MultiPolygon, or Point + radius_m")]
        )
    if problems or geom is None:
        raise GeometryProblems(problems)
    if geom.is_empty:
        raise GeometryProblems([Problem(path, "geometry is empty")])
    n = _vertex_count(geom)
    if n > MAX_VERTICES:
        raise GeometryProblems([Problem(path, f"{n} vertices is more than the limit of {MAX_VERTICES}")])
    if not geom.is_valid:
        raise GeometryProblems([Problem(path, f"invalid geometry: {shapely.is_valid_reason(geom)}")])
    return geom


def circle_polygon(center_lon: float, center_lat: float, radius_m: float) -> Polygon:
    """A circle of ``radius_m`` metres around a WGS84 point, as a WGS84 polygon."""
    proj = LocalProjection(center_lon, center_lat)
    return proj.geometry_to_wgs84(Point(0.0, 0.0).buffer(radius_m, quad_segs=CIRCLE_QUAD_SEGS))


def zone_polygon(geom: BaseGeometry, radius_m: float | None) -> Polygon | MultiPolygon:
    """The area a validated zone geometry covers (a Point with a radius becomes its circle)."""
    if isinstance(geom, Point):
        assert radius_m is not None
        return circle_polygon(geom.x, geom.y, radius_m)
    return geom  # type: ignore[return-value]


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """A shapely geometry as a GeoJSON geometry object, with arrays as lists (as parsed JSON has them), so it
    passes the same validation as the geometry a client sends."""
    return _lists(shapely.geometry.mapping(geom))  # type: ignore[no-any-return]


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    return value
