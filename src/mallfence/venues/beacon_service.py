"""The beacon registry: CRUD, bulk import (CSV, GeoJSON points; upsert by key, all or nothing), export.

Keyword-only, session first. Positions are WGS84 points; the venue snapshot projects them into the
venue's local metres for positioning (``beacon_map``).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import ValidationError
from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.errors import Conflict, Invalid, Issue, NotFound
from mallfence.spatial.beacons import Beacon as LocatorBeacon
from mallfence.spatial.beacons import BeaconMap
from mallfence.spatial.projection import LocalProjection
from mallfence.venues import service as venue_service
from mallfence.venues.beacon_schemas import (
    DEFAULT_POWER_1M,
    BeaconIdentity,
    BeaconImportSummary,
    BeaconIn,
    BeaconOut,
    BeaconUpdate,
    power_from,
)
from mallfence.venues.models import Beacon, Level, Venue, Zone

MAX_IMPORT_ROWS = 20_000
MAX_BEACON_DISTANCE_M = 5_000.0  # like zones: further from the anchor is a swapped lon/lat or a wrong venue


def get_beacon(session: Session, *, venue: Venue, beacon_id: int) -> Beacon:
    beacon = session.get(Beacon, beacon_id)
    if beacon is None or beacon.venue_id != venue.id:
        raise NotFound(f"beacon {beacon_id} not found in venue {venue.slug!r}")
    return beacon


def list_beacons(session: Session, *, venue: Venue, level: int | None = None, zone_id: int | None = None,
                 active: bool | None = None) -> list[Beacon]:
    q = select(Beacon).where(Beacon.venue_id == venue.id).order_by(Beacon.id)
    if level is not None:
        q = q.join(Level, Beacon.level_id == Level.id).where(Level.ordinal == level)
    if zone_id is not None:
        q = q.where(Beacon.zone_id == zone_id)
    if active is not None:
        q = q.where(Beacon.active == active)
    return list(session.scalars(q).unique())


def _position(venue: Venue, lonlat: tuple[float, float], loc: tuple[str | int, ...]) -> Point:
    lon, lat = lonlat
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise Invalid(Issue(loc, "position must be [longitude -180..180, latitude -90..90]"))
    d = LocalProjection(venue.anchor_lon, venue.anchor_lat).distance_m(lon, lat)
    if d > MAX_BEACON_DISTANCE_M:
        raise Invalid(Issue(loc, f"position is {d / 1000:.1f} km from the venue anchor (limit "
                                 f"{MAX_BEACON_DISTANCE_M / 1000:g} km): are longitude and latitude swapped?"))
    return Point(lon, lat)


def _level(levels: dict[int, Level], ordinal: int, loc: tuple[str | int, ...]) -> Level:
    if ordinal not in levels:
        known = ", ".join(map(str, sorted(levels))) or "none"
        raise Invalid(Issue(loc, f"unknown level {ordinal} (levels of this venue: {known})"))
    return levels[ordinal]


def _zone_id(session: Session, venue: Venue, zone_id: int | None, loc: tuple[str | int, ...]) -> int | None:
    if zone_id is None:
        return None
    zone = session.get(Zone, zone_id)
    if zone is None or zone.venue_id != venue.id:
        raise Invalid(Issue(loc, f"zone {zone_id} does not exist in venue {venue.slug!r}"))
    return zone.id


def _unique(session: Session, venue: Venue, beacon_id: int | None, key: str, external_id: str | None) -> None:
    other = session.scalar(select(Beacon.id).where(Beacon.venue_id == venue.id, Beacon.key == key))
    if other is not None and other != beacon_id:
        raise Conflict(f"beacon {other} already has the identity {key}")
    if external_id is not None:
        other = session.scalar(select(Beacon.id).where(Beacon.venue_id == venue.id,
                                                       Beacon.external_id == external_id))
        if other is not None and other != beacon_id:
            raise Conflict(f"beacon {other} already has external_id {external_id!r}")


def create_beacon(session: Session, *, venue: Venue, data: BeaconIn) -> Beacon:
    key = data.canonical_key()
    assert key is not None  # BeaconIn refuses a beacon without identity
    _unique(session, venue, None, key, data.external_id)
    levels = venue_service.levels_by_ordinal(session, venue=venue)
    beacon = Beacon(
        venue_id=venue.id, key=key, external_id=data.external_id, name=data.name,
        position=_position(venue, data.position, ("position",)), level_id=_level(levels, data.level, ("level",)).id,
        power_1m=power_from(data.power_1m, data.tx_power_0m) or DEFAULT_POWER_1M,
        zone_id=_zone_id(session, venue, data.zone_id, ("zone_id",)), active=data.active,
    )
    session.add(beacon)
    session.flush()
    return beacon


def update_beacon(session: Session, *, venue: Venue, beacon: Beacon, data: BeaconUpdate) -> Beacon:
    given = data.model_fields_set
    if "external_id" in given:
        _unique(session, venue, beacon.id, beacon.key, data.external_id)
        beacon.external_id = data.external_id
    if "name" in given:
        beacon.name = data.name
    if data.position is not None:
        beacon.position = _position(venue, data.position, ("position",))
    if data.level is not None:
        beacon.level_id = _level(venue_service.levels_by_ordinal(session, venue=venue), data.level, ("level",)).id
    power = power_from(data.power_1m, data.tx_power_0m)
    if power is not None:
        beacon.power_1m = power
    if "zone_id" in given:
        beacon.zone_id = _zone_id(session, venue, data.zone_id, ("zone_id",))
    if data.active is not None:
        beacon.active = data.active
    session.flush()
    session.refresh(beacon)
    return beacon


def delete_beacon(session: Session, *, beacon: Beacon) -> None:
    session.delete(beacon)
    session.flush()


def beacon_out(beacon: Beacon) -> BeaconOut:
    kind, *ident = beacon.key.split(":")
    ids: dict[str, Any] = ({"uuid": ident[0], "major": int(ident[1]), "minor": int(ident[2])} if kind == "ibeacon"
                           else {"namespace": ident[0], "instance": ident[1]})
    return BeaconOut(
        id=beacon.id, key=beacon.key, kind=kind, **ids, external_id=beacon.external_id, name=beacon.name,  # type: ignore[arg-type]
        position=(beacon.position.x, beacon.position.y), level=beacon.level.ordinal, power_1m=beacon.power_1m,
        zone_id=beacon.zone_id, active=beacon.active, created_at=beacon.created_at, updated_at=beacon.updated_at,
    )


# -- positioning ---------------------------------------------------------------------------------------
def beacon_map(session: Session, *, venue: Venue) -> BeaconMap:
    """The venue's active beacons in its local metres, for ``spatial.beacons.locate``."""
    rows = session.execute(select(Beacon.key, Beacon.position, Beacon.power_1m, Level.ordinal)
                           .join(Level, Level.id == Beacon.level_id)
                           .where(Beacon.venue_id == venue.id, Beacon.active.is_(True))
                           .order_by(Beacon.id)).all()
    if not rows:
        return BeaconMap(())
    proj = LocalProjection(venue.anchor_lon, venue.anchor_lat)
    x, y = proj.to_local(np.array([r.position.x for r in rows]), np.array([r.position.y for r in rows]))
    return BeaconMap(LocatorBeacon(r.key, float(px), float(py), int(r.ordinal), float(r.power_1m))
                     for r, px, py in zip(rows, x.tolist(), y.tolist(), strict=True))


# -- bulk import ---------------------------------------------------------------------------------------
_CSV_NUMBERS = {"lon": float, "lat": float, "level": int, "major": int, "minor": int, "power_1m": float,
                "tx_power_0m": float}
_CSV_COLUMNS = {"key", "uuid", "major", "minor", "namespace", "instance", "lon", "lat", "level", "power_1m",
                "tx_power_0m", "external_id", "name", "zone", "active"}


def rows_from_csv(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, fields) per data row of a CSV with a header (see the README for columns)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise Invalid(Issue(("csv",), "empty CSV: expected a header row, e.g. key,lon,lat,level,power_1m"))
    unknown = [h for h in header if h not in _CSV_COLUMNS]
    if unknown:
        raise Invalid(Issue(("csv", "header"), f"unknown column(s) {', '.join(map(repr, unknown))}; known: "
                                               f"{', '.join(sorted(_CSV_COLUMNS))}"))
    missing = [c for c in ("lon", "lat", "level") if c not in header]
    if missing:
        raise Invalid(Issue(("csv", "header"), f"missing column(s): {', '.join(missing)}"))
    rows, issues = [], []
    for line, raw in enumerate(reader, start=2):
        if None in raw:
            issues.append(Issue(("csv", f"line {line}"), "more values than header columns"))
            continue
        fields: dict[str, Any] = {}
        for name, value in raw.items():
            value = (value or "").strip()
            if not value:
                continue
            name = name.strip()
            if name in _CSV_NUMBERS:
                try:
                    fields[name] = _CSV_NUMBERS[name](value)
                except ValueError:
                    issues.append(Issue(("csv", f"line {line}", name), f"{value!r} is not a number"))
            elif name == "active":
                fields[name] = value.lower() not in ("0", "false", "no", "off")
            else:
                fields[name] = value
        if "lon" in fields and "lat" in fields:
            fields["position"] = (fields.pop("lon"), fields.pop("lat"))
        rows.append((f"line {line}", fields))
    if issues:
        raise Invalid(issues)
    return rows


def rows_from_geojson(collection: Any) -> list[tuple[str, dict[str, Any]]]:
    """(label, fields) per Point feature of a FeatureCollection (``zones/*-beacons.geojson`` format)."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise Invalid(Issue(("type",), "expected a GeoJSON FeatureCollection of Point features"))
    features = collection.get("features")
    if not isinstance(features, list):
        raise Invalid(Issue(("features",), "features must be an array"))
    rows, issues = [], []
    for i, f in enumerate(features):
        geometry = f.get("geometry") if isinstance(f, dict) else None
        props = f.get("properties") if isinstance(f, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point" or not isinstance(coords, list) \
                or len(coords) < 2 or not all(isinstance(c, int | float) for c in coords[:2]):
            issues.append(Issue(("features", i, "geometry"), "must be a GeoJSON Point [lon, lat]"))
            continue
        if not isinstance(props, dict):
            issues.append(Issue(("features", i, "properties"), "properties must be an object"))
            continue
        fields = {k: v for k, v in props.items() if k not in ("kind", "id")}  # kind follows from the key
        if "key" in fields:  # our export (and zones/) spells the identity out too: it must agree with the key
            spelled = {k: fields.pop(k) for k in _IDENTITY_PARTS if k in fields}
            if spelled and not _agrees(fields["key"], spelled):
                issues.append(Issue(("features", i, "properties"), f"key {fields['key']!r} disagrees with "
                                    f"{', '.join(f'{k}={v!r}' for k, v in spelled.items())}"))
                continue
        if "zone_external_id" in fields:
            fields["zone"] = fields.pop("zone_external_id")
        fields["position"] = (coords[0], coords[1])
        rows.append((f"features[{i}]", fields))
    if issues:
        raise Invalid(issues)
    return rows


_IDENTITY_PARTS = ("uuid", "major", "minor", "namespace", "instance")


def _agrees(key: Any, spelled: dict[str, Any]) -> bool:
    try:
        return BeaconIdentity(key=key).canonical_key() == BeaconIdentity(**spelled).canonical_key()
    except (ValueError, ValidationError):
        return False


def import_beacons(session: Session, *, venue: Venue, rows: list[tuple[str, dict[str, Any]]],
                   source: str, prune: bool = False) -> BeaconImportSummary:
    """Upsert beacons by identity; Invalid naming every problem and nothing written if any row is wrong.

    ``zone`` in a row is a zone's external_id (portable between installations), not its id.
    """
    if len(rows) > MAX_IMPORT_ROWS:
        raise Invalid(Issue((source,), f"{len(rows)} beacons is more than the limit of {MAX_IMPORT_ROWS}"))
    levels = venue_service.levels_by_ordinal(session, venue=venue)
    zones = dict(session.execute(select(Zone.external_id, Zone.id).where(
        Zone.venue_id == venue.id, Zone.external_id.is_not(None))).all())
    parsed: list[tuple[str, str, BeaconIn, int | None]] = []
    issues: list[Issue] = []
    for label, fields in rows:
        zone_ref = fields.pop("zone", None)
        try:
            data = BeaconIn.model_validate(fields)
            key = data.canonical_key()
            assert key is not None
        except ValidationError as exc:
            issues += [Issue((label, *e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]
            continue
        zone_id = None
        if zone_ref is not None:
            zone_id = zones.get(str(zone_ref))
            if zone_id is None:
                issues.append(Issue((label, "zone"), f"no zone with external_id {zone_ref!r} in this venue"))
        try:
            _position(venue, data.position, (label, "position"))
            _level(levels, data.level, (label, "level"))
        except Invalid as exc:
            issues += exc.issues
        parsed.append((label, key, data, zone_id))
    for what, values in (("identity", [(lb, k) for lb, k, _, _ in parsed]),
                         ("external_id", [(lb, d.external_id) for lb, _, d, _ in parsed if d.external_id])):
        counts = Counter(v for _, v in values)
        issues += [Issue((lb, what), f"{what} {v} appears {counts[v]} times in this import")
                   for lb, v in values if counts[v] > 1]
    if issues:
        raise Invalid(issues)
    existing = {b.key: b for b in session.scalars(select(Beacon).where(Beacon.venue_id == venue.id))}
    created = updated = unchanged = 0
    seen_labels = {d.external_id for _, _, d, _ in parsed if d.external_id}
    for b in existing.values():  # free external ids that this import moves to other beacons
        if b.external_id in seen_labels and b.key not in {k for _, k, _, _ in parsed}:
            b.external_id = None
    session.flush()
    for _, key, data, zone_id in parsed:
        values = dict(external_id=data.external_id, name=data.name, position=Point(*data.position),
                      level_id=levels[data.level].id, zone_id=zone_id, active=data.active,
                      power_1m=power_from(data.power_1m, data.tx_power_0m) or DEFAULT_POWER_1M)
        beacon = existing.get(key)
        if beacon is None:
            session.add(Beacon(venue_id=venue.id, key=key, **values))
            created += 1
        elif _changed(beacon, values):
            for k, v in values.items():
                setattr(beacon, k, v)
            updated += 1
        else:
            unchanged += 1
    deleted = 0
    if prune:
        keep = {k for _, k, _, _ in parsed}
        for key, beacon in existing.items():
            if key not in keep:
                session.delete(beacon)
                deleted += 1
    session.flush()
    total = len(list_beacons(session, venue=venue))
    return BeaconImportSummary(created=created, updated=updated, unchanged=unchanged, deleted=deleted,
                               beacons=total)


def _changed(beacon: Beacon, values: dict[str, Any]) -> bool:
    for k, v in values.items():
        old = getattr(beacon, k)
        if k == "position":
            if not old.equals_exact(v, 1e-9):
                return True
        elif old != v:
            return True
    return False


def export_beacons(beacons: Iterable[Beacon], *, venue: Venue) -> dict[str, Any]:
    """The venue's beacons as a FeatureCollection that ``import_beacons`` takes back unchanged."""
    features = []
    for b in beacons:
        out = beacon_out(b)
        props = {k: v for k, v in out.model_dump().items()
                 if k not in ("id", "position", "created_at", "updated_at", "zone_id") and v is not None}
        if b.zone is not None and b.zone.external_id:
            props["zone_external_id"] = b.zone.external_id
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": list(out.position)},
                         "properties": props})
    return {"type": "FeatureCollection", "venue": {"slug": venue.slug, "anchor": [venue.anchor_lon,
                                                                                   venue.anchor_lat]},
            "features": features}
