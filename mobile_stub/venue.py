"""A venue as the stub sees it: zones from the server export, in local metres, grouped by level."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from mallfence.spatial.projection import LocalProjection

CIRCLE_QUAD_SEGS = 16  # same 64-gon as the server uses for circle zones


class VenueError(ValueError):
    """The export could not be fetched or does not describe a usable venue."""


@dataclass(frozen=True, slots=True)
class Level:
    """One floor of the venue (IMDF-style ordinal: 0 ground, -1 below, 1 above)."""

    ordinal: int
    name: str
    short_name: str


@dataclass(frozen=True, slots=True, eq=False)
class Zone:
    """One zone of the export, with its geometry projected to local metres."""

    id: int
    external_id: str | None
    name: str
    kind: str
    level: int | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    active: bool
    geom: BaseGeometry

    @property
    def label(self) -> str:
        """A short human label for logs and sample hints."""
        return self.external_id or self.name or str(self.id)

    @property
    def is_escalator(self) -> bool:
        """A custom zone tagged as an escalator landing."""
        return "escalator" in self.tags

    @property
    def is_lift(self) -> bool:
        """A custom zone tagged as a lift (elevator) landing."""
        return "lift" in self.tags or "elevator" in self.tags

    @property
    def connects(self) -> tuple[int, ...]:
        """Levels an escalator or lift links, from ``metadata.connects`` (empty when absent)."""
        raw = self.metadata.get("connects") if isinstance(self.metadata, dict) else None
        if not isinstance(raw, list | tuple):
            return ()
        return tuple(int(v) for v in raw if isinstance(v, int | float) and not isinstance(v, bool))


@dataclass(slots=True)
class Venue:
    """A venue with its levels and zones; ``cache`` holds planner data derived from it."""

    slug: str
    name: str
    timezone: str
    anchor: tuple[float, float]
    levels: list[Level]
    zones: list[Zone]
    projection: LocalProjection
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def zones_on(self, ordinal: int | None) -> list[Zone]:
        """Zones of one level (``None``: the venue-wide zones)."""
        return [z for z in self.zones if z.level == ordinal]

    def by_level(self) -> dict[int | None, list[Zone]]:
        """Zones grouped by level ordinal; venue-wide zones under ``None``."""
        out: dict[int | None, list[Zone]] = {}
        for z in self.zones:
            out.setdefault(z.level, []).append(z)
        return out

    def level_label(self, ordinal: int | None) -> str:
        """The short name of a level, e.g. ``L1``, or ``venue`` for venue-wide zones."""
        if ordinal is None:
            return "venue"
        for lv in self.levels:
            if lv.ordinal == ordinal:
                return lv.short_name or lv.name or str(ordinal)
        return f"L{ordinal}"

    def to_wgs84(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local metres back to (lon, lat) arrays."""
        return self.projection.to_wgs84(xs, ys)


def _zone_geometry(feature: dict[str, Any], proj: LocalProjection) -> BaseGeometry:
    geom = shape(feature["geometry"])
    props = feature.get("properties") or {}
    if isinstance(geom, Point):
        radius = props.get("radius_m")
        if not isinstance(radius, int | float) or radius <= 0:
            raise VenueError(f"zone {props.get('id')}: a Point zone needs a positive radius_m")
        return proj.geometry_to_local(geom).buffer(float(radius), quad_segs=CIRCLE_QUAD_SEGS)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise VenueError(f"zone {props.get('id')}: unsupported geometry {geom.geom_type}")
    local = proj.geometry_to_local(geom)
    # Hand-drawn rings can self-touch; make_valid keeps the planner's unions from raising.
    return local if local.is_valid else shapely.make_valid(local)


def _level_of(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VenueError(f"level must be an integer ordinal or null, got {value!r}")
    return int(value)


def venue_from_export(data: dict[str, Any]) -> Venue:
    """Build a Venue from a parsed export (GeoJSON FeatureCollection with venue/levels members)."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise VenueError("the export is not a GeoJSON FeatureCollection")
    meta = data.get("venue") or {}
    features = [f for f in data.get("features") or [] if isinstance(f, dict) and f.get("geometry")]
    if not features:
        raise VenueError("the export has no zones")
    anchor = meta.get("anchor")
    if not (isinstance(anchor, list | tuple) and len(anchor) >= 2):
        # No anchor: the centre of the zones' bounds is as good a tangent point.
        minx, miny, maxx, maxy = shapely.total_bounds([shape(f["geometry"]) for f in features])
        anchor = [(minx + maxx) / 2, (miny + maxy) / 2]
    proj = LocalProjection(float(anchor[0]), float(anchor[1]))
    zones: list[Zone] = []
    for i, f in enumerate(features):
        p = f.get("properties") or {}
        try:
            tags = tuple(str(t).lower() for t in p.get("tags") or ())
            zones.append(Zone(
                id=int(p.get("id", -(i + 1))),
                external_id=p.get("external_id"),
                name=str(p.get("name") or p.get("external_id") or f"zone {i}"),
                kind=str(p.get("kind") or "custom"),
                level=_level_of(p.get("level")),
                tags=tags,
                metadata=p.get("metadata") if isinstance(p.get("metadata"), dict) else {},
                active=bool(p.get("active", True)),
                geom=_zone_geometry(f, proj),
            ))
        except (KeyError, TypeError, ValueError, shapely.errors.ShapelyError) as exc:
            raise VenueError(f"feature {i}: {exc}") from exc
    levels = [
        Level(int(lv["ordinal"]), str(lv.get("name") or ""), str(lv.get("short_name") or ""))
        for lv in data.get("levels") or []
        if isinstance(lv, dict) and isinstance(lv.get("ordinal"), int)
    ]
    known = {lv.ordinal for lv in levels}
    levels += [Level(o, f"Level {o}", f"L{o}") for o in sorted({z.level for z in zones} - known - {None})]
    levels.sort(key=lambda lv: lv.ordinal)
    return Venue(
        slug=str(meta.get("slug") or ""),
        name=str(meta.get("name") or meta.get("slug") or ""),
        timezone=str(meta.get("timezone") or "UTC"),
        anchor=(proj.lon0, proj.lat0),
        levels=levels,
        zones=zones,
        projection=proj,
    )


def load_venue_file(path: str | Path) -> Venue:
    """Load a venue from a local GeoJSON file in the export format."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VenueError(f"cannot read venue file {path}: {exc}") from exc
    return venue_from_export(data)


async def fetch_venue(client: httpx.AsyncClient, server_url: str, slug: str) -> Venue:
    """Download ``/v1/venues/{slug}/export`` and build the Venue."""
    url = f"{server_url.rstrip('/')}/v1/venues/{slug}/export"
    resp = await client.get(url)
    if resp.status_code != 200:
        raise VenueError(f"GET {url} -> {resp.status_code}: {resp.text[:200]}")
    venue = venue_from_export(resp.json())
    venue.slug = venue.slug or slug
    return venue
