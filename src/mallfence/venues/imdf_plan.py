"""IMDF features to a mallfence venue: levels and zones to upsert, and a note of every choice made.

Pure (no database). The mapping is the table in zones/README.md ("IMDF import"), in short: a unit or
kiosk with an occupant anchored in it is a store; walkways are corridors, parking is parking, the
food-service hall is the food court, escalators/lifts/stairs are tagged custom zones; geofences are
custom zones tagged with their category; pedestrian doors on a level's outline become entrances;
the venue outline is the venue zone. Every zone's external_id is the IMDF feature id, which is what
makes a re-import update in place. What is left out is reported with the reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import shapely
from pydantic import ValidationError
from shapely.geometry import mapping, shape
from shapely.geometry.polygon import orient

from mallfence.errors import Invalid, Issue
from mallfence.presence.defaults import settings_for
from mallfence.spatial.projection import LocalProjection
from mallfence.venues import schemas
from mallfence.venues.imdf_features import Feature, Features, label, names_of
from mallfence.venues.imdf_geometry import ENTRANCE_DEPTH_M, entrance_area, is_outside_door, lowered_margin
from mallfence.venues.imdf_hours import HoursNotConverted, from_osm, valid_at

UNIT_KINDS = {"walkway": "corridor", "lobby": "corridor", "ramp": "corridor", "footbridge": "corridor",
              "movingwalkway": "corridor", "parking": "parking", "foodservice": "food_court",
              "escalator": "custom", "elevator": "custom", "stairs": "custom", "steps": "custom"}
UNIT_TAGS = {"elevator": ["elevator", "lift"], "steps": ["stairs"]}  # otherwise the category itself
# Unit categories a tenant can occupy: with an occupant anchored in them they are stores.
TENANT_UNITS = {"room", "unspecified", "foodservice", "movietheater", "theater", "fitnessroom", "recreation",
                "lounge", "office"}
PRIVATE_UNITS = ("restroom", "shower", "mothersroom")  # never geofenced: no presence in toilets
IMPORTED_TYPES = {"venue", "level", "unit", "kiosk", "opening", "occupant", "anchor", "amenity", "geofence",
                  "address"}
MAX_NAME = 200


@dataclass
class PlannedZone:
    data: schemas.ZoneIn
    file: str
    feature_id: str


@dataclass
class Plan:
    venue_name: str
    venue_names: dict[str, str]
    anchor: tuple[float, float]
    country: str | None
    language: str
    levels: list[schemas.LevelIn]
    zones: list[PlannedZone] = field(default_factory=list)
    # (file, message) -> feature ids; grouped so 80 shop doors make one line, not 80
    warnings: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    skipped: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    ignored_types: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)


def build_plan(features: Features, *, language: str | None = None, now: datetime | None = None) -> Plan:
    """The venue, levels and zones the archive describes; the features were checked by read_features."""
    manifest = features.manifest
    lang = language or (manifest.get("language") if isinstance(manifest.get("language"), str) else None) or "en"
    venue = features.of("venue")[0]
    address = features.ref(venue, "address_id")
    anchor = _display_point(venue)
    if anchor is None:  # IMDF requires a display point; without one the outline's centre will do
        c = shape(venue.geometry).centroid
        anchor = (c.x, c.y)
    name = label(venue.props.get("name"), lang) or "Venue"
    plan = Plan(venue_name=name[:MAX_NAME], venue_names=names_of(venue.props.get("name"), lang), anchor=anchor,
                country=address.props.get("country") if address else None, language=lang, levels=[])
    if anchor != _display_point(venue):
        plan.notes["venue.geojson", "no display_point: the anchor is the centre of the outline"].append(venue.id)
    if manifest.get("version") != "1.0.0":
        plan.warnings["manifest.json", f"version {manifest.get('version')!r}: read as IMDF 1.0.0"].append("")
    _Planner(features, plan, now or datetime.now(UTC)).run(venue, address)
    for kind, count in sorted(features.counts.items()):
        if kind not in IMPORTED_TYPES and count:
            plan.ignored_types[kind] = count
    for file in features.unknown_files:
        plan.warnings[file, "not an IMDF feature type: ignored"].append("")
    for file in features.other_files:
        plan.notes[file, "not an IMDF file: ignored"].append("")
    if plan.issues:
        raise Invalid(plan.issues)
    return plan


def _display_point(feature: Feature) -> tuple[float, float] | None:
    point = feature.props.get("display_point")
    c = point.get("coordinates") if isinstance(point, dict) and point.get("type") == "Point" else None
    if (isinstance(c, list) and len(c) in (2, 3) and all(isinstance(v, int | float) for v in c)
            and -180 <= c[0] <= 180 and -90 <= c[1] <= 90):
        return float(c[0]), float(c[1])
    return None


class _Planner:
    def __init__(self, features: Features, plan: Plan, now: datetime):
        self.f, self.plan, self.now = features, plan, now
        self.proj = LocalProjection(*plan.anchor)
        self.lang = plan.language
        self.ordinal: dict[str, int] = {}  # level id -> ordinal
        self.short: dict[int, str] = {}  # ordinal -> short name, for fallback zone names
        self.amenities: dict[str, list[dict[str, Any]]] = defaultdict(list)  # unit id -> amenities in it

    def run(self, venue: Feature, address: Feature | None) -> None:
        level_meta = self._levels()
        for amenity in self.f.of("amenity"):
            item = {"id": amenity.id, "category": amenity.props.get("category"),
                    "names": names_of(amenity.props.get("name"), self.lang)}
            for unit_id in amenity.props.get("unit_ids") or []:
                self.amenities[unit_id].append(item)
            if not amenity.props.get("unit_ids"):
                self.skip(amenity, "amenity in no unit: nothing to attach it to")
        self._spaces()
        for geofence in self.f.of("geofence"):
            self._geofence(geofence)
        for opening in self.f.of("opening"):
            self._opening(opening)
        self._venue(venue, address, level_meta)
        zoned = {z.feature_id for z in self.plan.zones}
        for amenity in self.f.of("amenity"):
            units = amenity.props.get("unit_ids") or []
            if units and not zoned.intersection(units):
                self.skip(amenity, "its unit is not a zone, so there is no zone to note it on")

    # -- helpers ------------------------------------------------------------------------------
    def skip(self, feature: Feature, reason: str) -> None:
        self.plan.skipped[feature.file, reason].append(feature.id)

    def add(self, feature: Feature, *, kind: str, name: str, level: int | None, geometry: dict[str, Any],
            tags: list[str], metadata: dict[str, Any], store: schemas.StoreFields | None = None,
            active: bool = True, external_id: str | None = None) -> None:
        if len(name) > MAX_NAME:
            self.plan.warnings[feature.file, f"name cut to {MAX_NAME} characters"].append(feature.id)
            name = name[:MAX_NAME]
        try:
            data = schemas.ZoneIn(name=name, kind=kind, level=level, geometry=geometry, tags=tags[:50],
                                  metadata=metadata, presence=self._presence(feature, kind, geometry), active=active,
                                  external_id=external_id or feature.id, store=store)
        except ValidationError as exc:  # not expected after read_features; named rather than a 500 if it happens
            self.plan.issues += [Issue((feature.file, feature.id, *e["loc"]), f"{feature.file} feature {feature.id}: "
                                       f"{'.'.join(map(str, e['loc']))}: {e['msg']}") for e in exc.errors()]
            return
        self.plan.zones.append(PlannedZone(data, feature.file, feature.id))

    def _presence(self, feature: Feature, kind: str, geometry: dict[str, Any]) -> schemas.PresenceOverrides:
        margin = lowered_margin(self.proj.geometry_to_local(shapely.force_2d(shape(geometry))), kind)
        if margin is None:
            return schemas.PresenceOverrides()
        self.plan.notes[feature.file, f"narrow zone: enter margin lowered from {settings_for(kind).enter_margin_m:g} "
                        "m to fit"].append(feature.id)
        return schemas.PresenceOverrides(enter_margin_m=margin)

    def _meta(self, feature: Feature, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"names": names_of(feature.props.get("name"), self.lang),
                                "imdf": {"feature_type": feature.type, "id": feature.id,
                                         "category": feature.props.get("category")}}
        if feature.props.get("alt_name"):
            meta["alt_names"] = names_of(feature.props["alt_name"], self.lang)
        if self.amenities.get(feature.id):
            meta["amenities"] = sorted(self.amenities[feature.id], key=lambda a: a["id"])
        return meta | {k: v for k, v in extra.items() if v is not None}

    def _fallback_name(self, feature: Feature, level: int | None) -> str:
        category = str(feature.props.get("category") or feature.type).replace(".", " ").capitalize()
        return f"{category} ({self.short[level]})" if level is not None else category

    # -- levels ---------------------------------------------------------------------------------
    def _levels(self) -> list[dict[str, Any]]:
        meta: dict[int, dict[str, Any]] = {}
        for level in self.f.of("level"):
            ordinal = level.props["ordinal"]
            self.ordinal[level.id] = ordinal
            if ordinal in meta:  # IMDF has a level per building; mallfence one per ordinal
                meta[ordinal]["ids"].append(level.id)
                self.plan.notes["level.geojson", "levels of several buildings share an ordinal: one mallfence "
                                "level each"].append(level.id)
                continue
            short = label(level.props.get("short_name"), self.lang)
            name = label(level.props.get("name"), self.lang) or short or f"Level {ordinal}"
            self.short[ordinal] = short or str(ordinal)
            self.plan.levels.append(schemas.LevelIn(ordinal=ordinal, name=name[:100],
                                                    short_name=short[:20] if short else None))
            meta[ordinal] = {"ordinal": ordinal, "ids": [level.id],
                             "names": names_of(level.props.get("name"), self.lang),
                             "short_names": names_of(level.props.get("short_name"), self.lang)}
        return [meta[o] for o in sorted(meta)]

    # -- units, kiosks and their occupants ------------------------------------------------------
    def _spaces(self) -> None:
        kiosk_of_anchor = {k.props["anchor_id"]: k for k in self.f.of("kiosk") if k.props.get("anchor_id")}
        tenants: dict[str, list[Feature]] = defaultdict(list)
        for occupant in self.f.of("occupant"):
            anchor = self.f.ref(occupant, "anchor_id")
            assert anchor is not None  # read_features checked every reference
            unit = self.f.ref(anchor, "unit_id")
            assert unit is not None
            space = kiosk_of_anchor.get(anchor.id) or unit
            if not shape(unit.geometry).buffer(1e-7).covers(shape(anchor.geometry)):
                self.plan.warnings["anchor.geojson", "anchor lies outside the unit it names"].append(anchor.id)
            tenants[space.id].append(occupant)
        for space in self.f.of("unit") + self.f.of("kiosk"):
            self._space(space, tenants.get(space.id, []))

    def _space(self, space: Feature, occupants: list[Feature]) -> None:
        category = str(space.props.get("category") or ("kiosk" if space.type == "kiosk" else "unspecified"))
        level = self.ordinal[space.props["level_id"]]
        if occupants and (space.type == "kiosk" or category in TENANT_UNITS):
            occupant, *others = occupants
            for other in others:
                self.skip(other, "shares its unit with another occupant: mallfence has one store per zone")
            self._store(space, occupant, level)
            return
        for occupant in occupants:
            self.skip(occupant, f"anchored in a {category} unit, which is not a tenant space")
        kind = UNIT_KINDS.get(category)
        if kind is None:
            if category.startswith(PRIVATE_UNITS):
                reason = "restrooms, showers and nursing rooms are never geofenced (privacy)"
            elif category in TENANT_UNITS or space.type == "kiosk":
                reason = f"vacant {category} (no occupant anchored in it)"
            else:
                reason = f"unit category {category!r} has no mallfence zone kind"
            self.skip(space, reason)
            return
        name = label(space.props.get("name"), self.lang) or self._fallback_name(space, level)
        self.add(space, kind=kind, name=name, level=level, geometry=space.geometry,
                 tags=UNIT_TAGS.get(category, [category]), metadata=self._meta(space))

    def _store(self, space: Feature, occupant: Feature, level: int) -> None:
        p = occupant.props
        brand = label(p.get("name"), self.lang) or "Store"
        hours = schemas.OpeningHours()
        if isinstance(p.get("hours"), str):
            try:
                converted = from_osm(p["hours"])
                hours = schemas.OpeningHours(**converted.hours)
                for note in converted.notes:
                    self.plan.notes["occupant.geojson", f"hours: {note}"].append(occupant.id)
            except HoursNotConverted as exc:
                self.plan.warnings["occupant.geojson", f"{brand}: hours {p['hours']!r} not converted ({exc}); "
                                   "the store has no opening hours, metadata.hours keeps the original"
                                   ].append(occupant.id)
        category = str(p["category"])[:100] if p.get("category") else None
        active = self._valid_now(occupant)
        name = label(space.props.get("name"), self.lang) or brand
        occ = {"id": occupant.id, "names": names_of(p.get("name"), self.lang), "category": p.get("category"),
               "anchor_id": p.get("anchor_id")}
        occ |= {k: p[k] for k in ("phone", "website", "validity", "correlation_id") if p.get(k) is not None}
        meta = self._meta(space, occupant=occ, hours=p.get("hours"))
        if not space.props.get("name"):
            meta["names"] = occ["names"]  # the zone is named after its tenant
        self.add(space, kind="store", name=name, level=level, geometry=space.geometry,
                 tags=[category] if category else [], metadata=meta, active=active,
                 store=schemas.StoreFields(name=brand[:MAX_NAME], category=category, opening_hours=hours))

    def _valid_now(self, occupant: Feature) -> bool:
        """IMDF validity switches a tenant on and off; applied as of the import (nothing re-checks it later)."""
        active, problems = valid_at(occupant.props.get("validity"), self.now)
        for problem in problems:
            self.plan.warnings["occupant.geojson", problem].append(occupant.id)
        if not active:
            self.plan.notes["occupant.geojson", "not valid today (validity): the store zone is inactive"
                            ].append(occupant.id)
        return active

    # -- geofences, openings, the venue -----------------------------------------------------------
    def _geofence(self, geofence: Feature) -> None:
        ordinals = sorted({self.ordinal[i] for i in geofence.props.get("level_ids") or []})
        name = label(geofence.props.get("name"), self.lang)
        category = str(geofence.props.get("category") or "geofence")
        meta = self._meta(geofence, parents=geofence.props.get("parents"),
                          correlation_id=geofence.props.get("correlation_id"))
        for ordinal in ordinals or [None]:
            eid = geofence.id if len(ordinals) <= 1 else f"{geofence.id[:120]}@{ordinal}"  # one zone per level
            self.add(geofence, kind="custom", name=name or self._fallback_name(geofence, ordinal), level=ordinal,
                     geometry=geofence.geometry, tags=[category], metadata=meta, external_id=eid)

    def _opening(self, opening: Feature) -> None:
        category = str(opening.props.get("category") or "")
        if not category.startswith("pedestrian"):
            self.skip(opening, f"{category or 'uncategorised'} opening: only pedestrian doors become entrances")
            return
        level = self.f.ref(opening, "level_id")
        assert level is not None
        to_local = self.proj.geometry_to_local
        door, outline = (to_local(shapely.force_2d(shape(f.geometry))) for f in (opening, level))
        if not is_outside_door(door, outline):
            self.skip(opening, "inside door (not on its level's outline): mallfence has no door zones")
            return
        area = entrance_area(door, outline)
        if area is None:
            self.skip(opening, "outside door with no floor behind it on its level")
            return
        rounded = shapely.set_precision(orient(self.proj.geometry_to_wgs84(area), 1.0), 1e-7)  # 1 cm, as drawn
        ordinal = self.ordinal[level.id]
        name = label(opening.props.get("name"), self.lang) or self._fallback_name(opening, ordinal)
        geometry = json.loads(json.dumps(mapping(rounded)))  # lists, as GeoJSON parsing expects
        self.add(opening, kind="entrance", name=name, level=ordinal, geometry=geometry, tags=[category],
                 metadata=self._meta(opening, door=opening.props.get("door"), depth_m=ENTRANCE_DEPTH_M))

    def _venue(self, venue: Feature, address: Feature | None, levels: list[dict[str, Any]]) -> None:
        p = venue.props
        opening_hours = None
        if isinstance(p.get("hours"), str):
            try:
                opening_hours = from_osm(p["hours"]).hours
            except HoursNotConverted as exc:
                self.plan.warnings["venue.geojson", f"venue hours {p['hours']!r} not converted ({exc})"
                                   ].append(venue.id)
        extra = {k: p.get(k) for k in ("phone", "website", "hours", "restriction")}
        address_props = {k: v for k, v in address.props.items() if v is not None} if address else None
        meta = self._meta(venue, address=address_props, opening_hours=opening_hours, levels=levels, **extra)
        self.add(venue, kind="venue", name=self.plan.venue_name, level=None, geometry=venue.geometry,
                 tags=[str(p.get("category") or "venue")], metadata=meta)
