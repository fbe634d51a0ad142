"""Venues, levels, zones and stores: validation and persistence. Keyword-only, session first."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallfence.errors import Conflict, Invalid, Issue, NotFound
from mallfence.presence.defaults import settings_for
from mallfence.spatial.geometry import GeometryProblems, parse_zone_geometry, to_geojson, zone_polygon
from mallfence.spatial.projection import LocalProjection
from mallfence.venues import schemas
from mallfence.venues.models import Level, Store, Venue, Zone

# A zone further than this from its venue's anchor is a mistake (swapped lon/lat, wrong venue).
MAX_ZONE_DISTANCE_M = 5_000.0


# -- venues -------------------------------------------------------------------------------------
def get_venue(session: Session, *, slug: str) -> Venue:
    venue = session.scalar(select(Venue).where(Venue.slug == slug))
    if venue is None:
        raise NotFound(f"venue {slug!r} not found")
    return venue


def list_venues(session: Session) -> list[Venue]:
    return list(session.scalars(select(Venue).order_by(Venue.slug)))


def create_venue(session: Session, *, data: schemas.VenueCreate) -> Venue:
    if session.scalar(select(Venue.id).where(Venue.slug == data.slug)) is not None:
        raise Conflict(f"venue {data.slug!r} already exists")
    venue = Venue(
        slug=data.slug, name=data.name, timezone=data.timezone, anchor_lon=data.anchor[0], anchor_lat=data.anchor[1],
        path_loss_exponent=data.path_loss_exponent, app_key="mfa_" + secrets.token_urlsafe(18),
    )
    session.add(venue)
    session.flush()
    return venue


def update_venue(session: Session, *, venue: Venue, data: schemas.VenueUpdate) -> Venue:
    for field, value in data.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(venue, field, value)
    session.flush()
    return venue


def delete_venue(session: Session, *, venue: Venue) -> None:
    session.delete(venue)
    session.flush()


def zone_count(session: Session, *, venue: Venue) -> int:
    return int(session.scalar(select(func.count(Zone.id)).where(Zone.venue_id == venue.id)) or 0)


def venue_out(session: Session, *, venue: Venue) -> schemas.VenueOut:
    return schemas.VenueOut(
        slug=venue.slug,
        name=venue.name,
        timezone=venue.timezone,
        anchor=(venue.anchor_lon, venue.anchor_lat),
        path_loss_exponent=venue.path_loss_exponent,
        levels=[schemas.LevelOut.model_validate(lv) for lv in venue.levels],
        zone_count=zone_count(session, venue=venue),
        created_at=venue.created_at,
        updated_at=venue.updated_at,
    )


# -- levels -------------------------------------------------------------------------------------
def get_level(session: Session, *, venue: Venue, ordinal: int) -> Level:
    level = session.scalar(select(Level).where(Level.venue_id == venue.id, Level.ordinal == ordinal))
    if level is None:
        raise NotFound(f"venue {venue.slug!r} has no level with ordinal {ordinal}")
    return level


def create_level(session: Session, *, venue: Venue, data: schemas.LevelIn) -> Level:
    if session.scalar(select(Level.id).where(Level.venue_id == venue.id, Level.ordinal == data.ordinal)):
        raise Conflict(f"venue {venue.slug!r} already has a level with ordinal {data.ordinal}")
    level = Level(venue_id=venue.id, **data.model_dump())
    session.add(level)
    session.flush()
    session.refresh(venue, ["levels"])
    return level


def update_level(session: Session, *, level: Level, data: schemas.LevelIn) -> Level:
    if data.ordinal != level.ordinal and session.scalar(
        select(Level.id).where(Level.venue_id == level.venue_id, Level.ordinal == data.ordinal)
    ):
        raise Conflict(f"another level already has ordinal {data.ordinal}")
    for field, value in data.model_dump().items():
        setattr(level, field, value)
    session.flush()
    return level


def delete_level(session: Session, *, level: Level) -> None:
    used = session.scalar(select(func.count(Zone.id)).where(Zone.level_id == level.id))
    if used:
        raise Conflict(f"level {level.ordinal} still has {used} zone(s): delete or move them first")
    session.delete(level)
    session.flush()


# -- zones --------------------------------------------------------------------------------------
def levels_by_ordinal(session: Session, *, venue: Venue) -> dict[int, Level]:
    return {lv.ordinal: lv for lv in session.scalars(select(Level).where(Level.venue_id == venue.id))}


def validate_geometry(
    *, venue: Venue, geometry: Any, radius_m: float | None, kind: str, presence: dict[str, float]
) -> tuple[BaseGeometry, BaseGeometry]:
    """(as authored, area covered) for a zone of ``venue``, or Invalid naming every problem."""
    try:
        geom = parse_zone_geometry(geometry, radius_m)
    except GeometryProblems as exc:
        raise Invalid([Issue(("geometry", *p.path) if p.path != ("radius_m",) else p.path, p.message)
                       for p in exc.problems]) from None
    if radius_m is not None and not isinstance(geom, Point):
        raise Invalid(Issue(("radius_m",), "radius_m is only for a Point geometry (a circle)"))
    area = zone_polygon(geom, radius_m)
    proj = LocalProjection(venue.anchor_lon, venue.anchor_lat)
    local = proj.geometry_to_local(area)
    distance = local.distance(Point(0.0, 0.0))
    if distance > MAX_ZONE_DISTANCE_M:
        raise Invalid(Issue(("geometry",), f"zone is {distance / 1000:.1f} km from the venue anchor "
                            f"(limit {MAX_ZONE_DISTANCE_M / 1000:g} km): are longitude and latitude swapped?"))
    margin = settings_for(kind, presence).enter_margin_m
    if margin > 0 and local.buffer(-margin).is_empty:
        raise Invalid(Issue(("presence", "enter_margin_m"), f"an enter margin of {margin:g} m leaves nothing of "
                            "this zone: it is too narrow; lower presence.enter_margin_m"))
    return geom, area


def _level_id(levels: dict[int, Level], ordinal: int | None) -> int | None:
    if ordinal is None:
        return None
    if ordinal not in levels:
        known = ", ".join(map(str, sorted(levels))) or "none"
        raise Invalid(Issue(("level",), f"unknown level {ordinal} (levels of this venue: {known})"))
    return levels[ordinal].id


def get_zone(session: Session, *, venue: Venue, zone_id: int) -> Zone:
    zone = session.get(Zone, zone_id)
    if zone is None or zone.venue_id != venue.id:
        raise NotFound(f"zone {zone_id} not found in venue {venue.slug!r}")
    return zone


def list_zones(
    session: Session, *, venue: Venue, level: int | None = None, kind: str | None = None,
    tag: str | None = None, active: bool | None = None,
) -> list[Zone]:
    q = select(Zone).where(Zone.venue_id == venue.id).order_by(Zone.id)
    if level is not None:
        q = q.join(Level, Zone.level_id == Level.id).where(Level.ordinal == level)
    if kind is not None:
        q = q.where(Zone.kind == kind)
    if active is not None:
        q = q.where(Zone.active == active)
    zones = list(session.scalars(q).unique())
    return [z for z in zones if tag in z.tags] if tag is not None else zones


def _check_external_id(session: Session, venue: Venue, external_id: str | None, zone_id: int | None) -> None:
    if external_id is None:
        return
    other = session.scalar(select(Zone.id).where(Zone.venue_id == venue.id, Zone.external_id == external_id))
    if other is not None and other != zone_id:
        raise Conflict(f"zone {other} already has external_id {external_id!r} in this venue")


def create_zone(session: Session, *, venue: Venue, data: schemas.ZoneIn) -> Zone:
    presence = data.presence.given()
    geom, area = validate_geometry(venue=venue, geometry=data.geometry, radius_m=data.radius_m,
                                   kind=data.kind, presence=presence)
    level_id = _level_id(levels_by_ordinal(session, venue=venue), data.level)
    _check_external_id(session, venue, data.external_id, None)
    zone = Zone(
        venue_id=venue.id, level_id=level_id, external_id=data.external_id, name=data.name, kind=data.kind,
        geometry=geom, area=area, radius_m=data.radius_m, tags=list(data.tags), meta=dict(data.metadata),
        presence=presence, active=data.active,
    )
    session.add(zone)
    session.flush()
    if data.store is not None:
        set_zone_store(session, venue=venue, zone=zone, data=data.store)
    return zone


def update_zone(session: Session, *, venue: Venue, zone: Zone, data: schemas.ZoneUpdate) -> Zone:
    given = data.model_fields_set
    kind = data.kind if data.kind is not None else zone.kind
    presence = data.presence.given() if data.presence is not None else zone.presence
    if "geometry" in given or "radius_m" in given or "kind" in given or "presence" in given:
        geometry = data.geometry if "geometry" in given else to_geojson(zone.geometry)
        radius = data.radius_m if ("radius_m" in given or "geometry" in given) else zone.radius_m
        zone.geometry, zone.area = validate_geometry(venue=venue, geometry=geometry, radius_m=radius,
                                                     kind=kind, presence=presence)
        zone.radius_m = radius
    if "level" in given:
        zone.level_id = _level_id(levels_by_ordinal(session, venue=venue), data.level)
    if "external_id" in given:
        _check_external_id(session, venue, data.external_id, zone.id)
        zone.external_id = data.external_id
    for field in ("name", "kind", "active"):
        if field in given and getattr(data, field) is not None:
            setattr(zone, field, getattr(data, field))
    if data.tags is not None:
        zone.tags = list(data.tags)
    if data.metadata is not None:
        zone.meta = dict(data.metadata)
    zone.presence = presence
    session.flush()
    return zone


def delete_zone(session: Session, *, zone: Zone) -> None:
    session.delete(zone)
    session.flush()


def effective_presence(zone: Zone) -> dict[str, float | None]:
    return asdict(settings_for(zone.kind, zone.presence))


def zone_out(zone: Zone) -> schemas.ZoneOut:
    store = zone.store
    return schemas.ZoneOut(
        id=zone.id, external_id=zone.external_id, name=zone.name, kind=zone.kind,
        level=zone.level.ordinal if zone.level is not None else None,
        geometry=to_geojson(zone.geometry), radius_m=zone.radius_m, tags=zone.tags, metadata=zone.meta,
        presence=zone.presence, effective_presence=effective_presence(zone), active=zone.active,
        store=schemas.StoreOut(id=store.id, name=store.name, category=store.category,
                               opening_hours=schemas.OpeningHours(**store.opening_hours)) if store else None,
        updated_at=zone.updated_at,
    )


# -- stores -------------------------------------------------------------------------------------
def set_zone_store(session: Session, *, venue: Venue, zone: Zone, data: schemas.StoreFields) -> Store:
    """Create or update the store that occupies ``zone``."""
    store = zone.store or session.scalar(select(Store).where(Store.zone_id == zone.id))
    if store is None:
        store = Store(venue_id=venue.id, zone_id=zone.id, name=data.name)
        session.add(store)
    store.name = data.name
    store.category = data.category
    store.opening_hours = data.opening_hours.model_dump()
    session.flush()
    session.refresh(zone, ["store"])
    return store


def get_store(session: Session, *, venue: Venue, store_id: int) -> Store:
    store = session.get(Store, store_id)
    if store is None or store.venue_id != venue.id:
        raise NotFound(f"store {store_id} not found in venue {venue.slug!r}")
    return store


def list_stores(session: Session, *, venue: Venue) -> list[Store]:
    return list(session.scalars(select(Store).where(Store.venue_id == venue.id).order_by(Store.id)))


def _link_zone(session: Session, venue: Venue, store: Store | None, zone_id: int | None) -> int | None:
    if zone_id is None:
        return None
    zone = get_zone(session, venue=venue, zone_id=zone_id)
    holder = session.scalar(select(Store.id).where(Store.zone_id == zone.id))
    if holder is not None and (store is None or holder != store.id):
        raise Conflict(f"zone {zone_id} is already linked to store {holder}")
    return zone.id


def create_store(session: Session, *, venue: Venue, data: schemas.StoreIn) -> Store:
    zone_id = _link_zone(session, venue, None, data.zone_id)
    store = Store(venue_id=venue.id, zone_id=zone_id, name=data.name, category=data.category,
                  opening_hours=data.opening_hours.model_dump())
    session.add(store)
    session.flush()
    return store


def update_store(session: Session, *, venue: Venue, store: Store, data: schemas.StoreUpdate) -> Store:
    given = data.model_fields_set
    if "zone_id" in given:
        store.zone_id = _link_zone(session, venue, store, data.zone_id)
    if data.name is not None:
        store.name = data.name
    if "category" in given:
        store.category = data.category
    if data.opening_hours is not None:
        store.opening_hours = data.opening_hours.model_dump()
    session.flush()
    return store


def delete_store(session: Session, *, store: Store) -> None:
    session.delete(store)
    session.flush()


def store_out(store: Store) -> schemas.StoreRecord:
    return schemas.StoreRecord(id=store.id, zone_id=store.zone_id, name=store.name, category=store.category,
                               opening_hours=schemas.OpeningHours(**store.opening_hours))
