"""GeoJSON FeatureCollection import (upsert by external_id, all or nothing) and export.

The format is RFC 7946 plus two foreign members, ``venue`` and ``levels``; zones/README.md documents
it. Import validates every feature before writing anything and reports every problem at once, each
naming the feature by index and external_id.
"""

from __future__ import annotations

import json
from typing import Any

import shapely
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.errors import Invalid, Issue
from mallfence.spatial.geometry import to_geojson
from mallfence.venues import schemas
from mallfence.venues import service as venue_service
from mallfence.venues.models import Level, Venue, Zone

MAX_FEATURES = 20_000


def _pydantic_issues(exc: ValidationError, prefix: tuple[str | int, ...], label: str) -> list[Issue]:
    return [Issue((*prefix, *e["loc"]), f"{label}{e['msg']}", e["type"]) for e in exc.errors()]


def _zone_input(feature: Any, i: int, label: str) -> schemas.ZoneIn:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise Invalid(Issue(("features", i), f"{label}must be a GeoJSON Feature object"))
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise Invalid(Issue(("features", i, "properties"), f"{label}properties must be an object"))
    fields = {k: v for k, v in props.items() if k != "id"}  # "id" is ours on export, ignored on import
    fields["geometry"] = feature.get("geometry")
    try:
        return schemas.ZoneIn.model_validate(fields)
    except ValidationError as exc:
        issues = []
        for e in exc.errors():
            where = ("geometry",) if e["loc"][:1] == ("geometry",) else ("properties", *e["loc"])
            issues.append(Issue(("features", i, *where), f"{label}{e['msg']}", e["type"]))
        raise Invalid(issues) from None


def _parse_levels(raw: Any) -> list[schemas.LevelIn]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Invalid(Issue(("levels",), "levels must be an array of {ordinal, name, short_name}"))
    levels, issues, seen = [], [], set()
    for i, item in enumerate(raw):
        try:
            level = schemas.LevelIn.model_validate(item)
        except ValidationError as exc:
            issues += _pydantic_issues(exc, ("levels", i), f"level {i}: ")
            continue
        if level.ordinal in seen:
            issues.append(Issue(("levels", i, "ordinal"), f"level {i}: ordinal {level.ordinal} appears twice"))
        seen.add(level.ordinal)
        levels.append(level)
    if issues:
        raise Invalid(issues)
    return levels


def _fingerprint(zone: Zone) -> tuple[Any, ...]:
    store = zone.store
    # JSON text, not the values: hours read back from the database are lists, freshly set ones tuples.
    store_state = None if store is None else json.dumps([store.name, store.category, store.opening_hours])
    return (zone.name, zone.kind, zone.level_id, shapely.to_wkb(zone.geometry), zone.radius_m, zone.tags,
            zone.meta, zone.presence, zone.active, store_state)


def import_collection(
    session: Session, *, venue: Venue, collection: Any, prune: bool = False
) -> schemas.ImportSummary:
    """Upsert a FeatureCollection into ``venue``; raises Invalid (nothing applied) on any problem."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise Invalid(Issue(("type",), "expected a GeoJSON FeatureCollection"))
    features = collection.get("features")
    if not isinstance(features, list):
        raise Invalid(Issue(("features",), "features must be an array"))
    if len(features) > MAX_FEATURES:
        raise Invalid(Issue(("features",), f"{len(features)} features is more than the limit of {MAX_FEATURES}"))
    file_levels = _parse_levels(collection.get("levels"))
    existing_levels = venue_service.levels_by_ordinal(session, venue=venue)
    known = set(existing_levels) | {lv.ordinal for lv in file_levels}

    issues: list[Issue] = []
    inputs: list[schemas.ZoneIn] = []
    seen: dict[str, int] = {}
    for i, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, dict) else None
        eid = props.get("external_id") if isinstance(props, dict) else None
        label = f"feature {i} (external_id {eid!r}): " if eid is not None else f"feature {i}: "
        try:
            data = _zone_input(feature, i, label)
            if data.external_id is None:
                raise Invalid(Issue(("features", i, "properties", "external_id"),
                                    f"{label}external_id is required to import (it is how re-imports update)"))
            if data.external_id in seen:
                raise Invalid(Issue(("features", i, "properties", "external_id"),
                                    f"{label}duplicate external_id, already used by feature {seen[data.external_id]}"))
            seen[data.external_id] = i
            if data.level is not None and data.level not in known:
                raise Invalid(Issue(("features", i, "properties", "level"),
                                    f"{label}unknown level {data.level} (not in the venue nor in the file's levels)"))
            venue_service.validate_geometry(venue=venue, geometry=data.geometry, radius_m=data.radius_m,
                                            kind=data.kind, presence=data.presence.given())
            inputs.append(data)
        except Invalid as exc:
            for issue in exc.issues:
                if issue.loc[:1] == ("features",):
                    issues.append(issue)
                else:
                    where = ("properties", *issue.loc) if issue.loc[:1] != ("geometry",) else issue.loc
                    issues.append(Issue(("features", i, *where), f"{label}{issue.msg}", issue.type))
    if issues:
        raise Invalid(issues)
    return _apply(session, venue=venue, levels=file_levels, existing_levels=existing_levels, inputs=inputs,
                  prune=prune)


def _apply(
    session: Session, *, venue: Venue, levels: list[schemas.LevelIn], existing_levels: dict[int, Level],
    inputs: list[schemas.ZoneIn], prune: bool,
) -> schemas.ImportSummary:
    levels_created, _ = upsert_levels(session, venue=venue, levels=levels, existing=existing_levels)
    by_eid = zones_by_external_id(session, venue=venue)
    outcomes = [upsert_zone(session, venue=venue, zone=by_eid.get(data.external_id), data=data) for data in inputs]
    if prune:
        prune_zones(session, zones=by_eid, keep={d.external_id for d in inputs})
    return schemas.ImportSummary(created=outcomes.count("created"), updated=outcomes.count("updated"),
                                 unchanged=outcomes.count("unchanged"), levels_created=levels_created,
                                 stores=sum(d.store is not None for d in inputs), zones=len(inputs))


# The steps of an upsert, shared with the IMDF import (venues/imdf_import.py).
def upsert_levels(
    session: Session, *, venue: Venue, levels: list[schemas.LevelIn], existing: dict[int, Level]
) -> tuple[int, int]:
    """Create the levels ``venue`` lacks and rename the ones that changed; (created, updated)."""
    created = updated = 0
    for lv in levels:
        current = existing.get(lv.ordinal)
        if current is None:
            venue_service.create_level(session, venue=venue, data=lv)
            created += 1
        elif (current.name, current.short_name) != (lv.name, lv.short_name):
            venue_service.update_level(session, level=current, data=lv)
            updated += 1
    return created, updated


def zones_by_external_id(session: Session, *, venue: Venue) -> dict[str, Zone]:
    """The venue's zones that have an external_id, by it."""
    zones = session.scalars(select(Zone).where(Zone.venue_id == venue.id)).unique()
    return {z.external_id: z for z in zones if z.external_id is not None}


def upsert_zone(
    session: Session, *, venue: Venue, zone: Zone | None, data: schemas.ZoneIn, drop_store: bool = False
) -> str:
    """Create ``data`` or bring ``zone`` (same external_id) in line with it: created, updated or unchanged.

    Without a store in ``data`` the zone keeps the one it has, unless ``drop_store`` (the source is the
    authority on tenants, as IMDF occupants are).
    """
    if zone is None:
        venue_service.create_zone(session, venue=venue, data=data)
        return "created"
    before = _fingerprint(zone)
    patch = schemas.ZoneUpdate.model_validate(data.model_dump(exclude={"store"}))
    venue_service.update_zone(session, venue=venue, zone=zone, data=patch)
    if data.store is not None:
        venue_service.set_zone_store(session, venue=venue, zone=zone, data=data.store)
    elif drop_store and zone.store is not None:
        venue_service.delete_store(session, store=zone.store)
        session.refresh(zone, ["store"])
    return "unchanged" if _fingerprint(zone) == before else "updated"


def prune_zones(session: Session, *, zones: dict[str, Zone], keep: set[str | None]) -> int:
    """Delete the zones whose external_id is not in ``keep``; how many went."""
    gone = [zone for eid, zone in zones.items() if eid not in keep]
    for zone in gone:
        venue_service.delete_zone(session, zone=zone)
    return len(gone)


def export_collection(session: Session, *, venue: Venue) -> dict[str, Any]:
    """The venue as a FeatureCollection that ``import_collection`` reads back unchanged."""
    features = []
    for zone in venue_service.list_zones(session, venue=venue):
        props: dict[str, Any] = {
            "id": zone.id, "external_id": zone.external_id, "name": zone.name, "kind": zone.kind,
            "level": zone.level.ordinal if zone.level is not None else None, "tags": zone.tags,
            "metadata": zone.meta, "presence": zone.presence, "active": zone.active,
        }
        if zone.radius_m is not None:
            props["radius_m"] = zone.radius_m
        if zone.store is not None:
            props["store"] = {"name": zone.store.name, "category": zone.store.category,
                              "opening_hours": zone.store.opening_hours}
        features.append({"type": "Feature", "geometry": to_geojson(zone.geometry), "properties": props})
    return {
        "type": "FeatureCollection",
        "venue": {"slug": venue.slug, "name": venue.name, "timezone": venue.timezone,
                  "anchor": [venue.anchor_lon, venue.anchor_lat]},
        "levels": [{"ordinal": lv.ordinal, "name": lv.name, "short_name": lv.short_name} for lv in venue.levels],
        "features": features,
    }
