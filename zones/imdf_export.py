"""Turn the sample mall (harbourside-mall.geojson) into the IMDF archive an operator would bring.

Run from the repository root:  .venv/bin/python zones/imdf_export.py

Writes zones/harbourside-imdf.zip: manifest, address, venue, building, footprint, levels, units
(walkways cut around escalators and lifts, as IMDF units tile a floor), kiosks, openings (outside
doors and a door on every shop front), occupants with OSM hours and anchors, amenities (toilets,
escalators, lifts, information, cash machine) and geofences (pickup points, the fountain court).
Names are localised (en + da); brand names are not translated. The mall's toilets, back-of-house in
the GeoJSON, are restroom units here. Deterministic: ids are UUIDv5 of the mall's external_ids, the
manifest date and zip timestamps are fixed, members are written in a fixed order.

Before writing, the archive is read back by mallfence's own IMDF import (archive, features, plan):
it must plan without warnings, and every zone of the GeoJSON must come back under its name, on its
level, covering the same point; every store with its hours. On any problem the old file is kept and
the exit status is 1.
"""

from __future__ import annotations

import io
import json
import re
import sys
import uuid
import zipfile
from pathlib import Path

import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box, mapping, shape
from shapely.geometry.polygon import orient
from shapely.ops import substring, unary_union

from mallfence.spatial.projection import LocalProjection
from mallfence.venues.imdf_archive import read_zip
from mallfence.venues.imdf_features import read_features
from mallfence.venues.imdf_hours import from_osm, to_osm
from mallfence.venues.imdf_plan import build_plan

HERE = Path(__file__).resolve().parent
SOURCE, TARGET = HERE / "harbourside-mall.geojson", HERE / "harbourside-imdf.zip"
NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://mallfence.example/zones/harbourside")
CREATED = "2025-01-15T12:00:00Z"  # the sample's release, not the time of the run
CENTRE = (110.0, 60.0)  # drawing metres of the anchor (generate.py draws around the building centre)

OCCUPANT_CATEGORY = {  # the mall's categories in IMDF's occupant vocabulary
    "books": "books", "fashion": "clothing", "cafe": "cafe", "pharmacy": "pharmacy",
    "electronics": "electronicappliances", "optician": "opticians", "kids": "clothing.childrens",
    "home": "homedecor", "shoes": "shoes", "jewellery": "jewelry", "florist": "florist", "outdoor": "outdoorgear",
    "beauty": "cosmetics", "stationery": "stationery", "phones": "mobilephones", "travel": "travelagent",
    "sports": "sportinggoods", "food": "specialtyfood", "services": "localservices", "toys": "toys",
    "gifts": "giftshops", "pets": "petstore", "music": "musicvideo", "accessories": "accessories",
    "hairdresser": "haircutsstyling", "bank": "bank", "crafts": "artsandcrafts", "health": "dentistry",
    "department_store": "departmentstore", "supermarket": "supermarket", "cinema": "cinema",
    "restaurant": "restaurant",
}
DA_LEVEL = {-1: ("Parkering", "P1"), 0: ("Stueetage", "St"), 1: ("1. sal", "1")}
DA_NAMES = [  # (English pattern, Danish), first match wins
    (r"Mall spine \(ground floor\)", "Strøget (stueetage)"), (r"Mall spine \(first floor\)", "Strøget (1. sal)"),
    (r"Parking lobby", "Parkeringslobby"), (r"Car park P1", "Parkeringskælder P1"),
    (r"West entrance", "Vestindgang"), (r"East entrance", "Østindgang"), (r"Main entrance", "Hovedindgang"),
    (r"Pickup point (\w)", r"Afhentningssted \1"), (r"Fountain court", "Springvandspladsen"),
    (r"Food court", "Madmarkedet"), (r"Escalators (\w) \((\w+)\)", r"Rulletrapper \1 (\2)"),
    (r"Lift \((\w+)\)", r"Elevator (\1)"), (r"(.*) \(ground floor\)", r"\1 (stueetage)"),
    (r"(.*) \(first floor\)", r"\1 (1. sal)"),
]
TOILETS = [("restroom.female", "Toilets (women)", "Toiletter (damer)", box(40, 30, 48, 38)),
           ("restroom.male", "Toilets (men)", "Toiletter (herrer)", box(48, 30, 56, 38)),
           ("restroom.unisex.wheelchair", "Accessible toilet", "Handicaptoilet", box(56, 30, 62, 38))]
OFF_CORRIDOR = {0: [("information", "Information", "Information", (122.0, 62.0)),
                    ("atm", "Cash machine", "Hæveautomat", (60.0, 61.0))]}
VALIDITY = {"Lighthouse Games": {"start": "2024-03-01T00:00:00+01:00", "end": None, "modified": None}}


def uid(*parts: object) -> str:
    return str(uuid.uuid5(NS, "/".join(map(str, parts))))


def da(name: str) -> str:
    for pattern, repl in DA_NAMES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, repl, name)
    return name


def labels(en: str, danish: str | None = None) -> dict[str, str]:
    return {"en": en, "da": danish or da(en)}


class Plane:
    """Drawing metres (origin at the building's south-west corner) <-> the file's WGS84."""

    def __init__(self, anchor: tuple[float, float]):
        self.proj = LocalProjection(*anchor)

    def local(self, geometry: dict) -> shapely.Geometry:
        g = self.proj.geometry_to_local(shape(geometry))
        return shapely.set_precision(shapely.transform(g, lambda c: c + CENTRE), 0.001)

    def wgs(self, geom: shapely.Geometry) -> dict:
        g = self.proj.geometry_to_wgs84(shapely.transform(geom, lambda c: c - CENTRE))
        if isinstance(g, Polygon):
            g = orient(g, 1.0)
        elif isinstance(g, MultiPolygon):
            g = MultiPolygon([orient(p, 1.0) for p in g.geoms])
        return json.loads(json.dumps(mapping(g)), parse_float=lambda s: round(float(s), 7))

    def point(self, x: float, y: float) -> dict:
        return self.wgs(Point(x, y))


def feature(kind: str, fid: str, geometry: dict | None, **props: object) -> dict:
    return {"id": fid, "type": "Feature", "feature_type": kind, "geometry": geometry, "properties": props}


def build(fc: dict) -> dict[str, list[dict]]:
    """The IMDF feature files of the mall, by feature type."""
    plane = Plane(tuple(fc["venue"]["anchor"]))
    zones = [(f["properties"], plane.local(f["geometry"])) for f in fc["features"]]
    out: dict[str, list[dict]] = {k: [] for k in ("address", "venue", "building", "footprint", "level", "unit",
                                                 "kiosk", "opening", "occupant", "anchor", "amenity", "geofence")}
    anchor_pt = plane.point(*CENTRE)
    outline = next(g for p, g in zones if p["kind"] == "venue")
    address, building = uid("address"), uid("building")
    out["address"].append(feature("address", address, None, address="Harbourside Allé 1", unit=None,
                                  locality="Aarhus", province="DK-82", country="DK", postal_code="8260",
                                  postal_code_ext=None, postal_code_vanity=None))
    out["venue"].append(feature(
        "venue", uid("venue"), plane.wgs(outline), category="shoppingcenter", restriction=None,
        name=labels(fc["venue"]["name"], "Harbourside Centret"), alt_name=None,
        hours="Mo-Sa 09:00-20:00; Su 11:00-18:00", phone=None, website="https://harbourside.example",
        display_point=anchor_pt, address_id=address))
    out["building"].append(feature("building", building, None, name=labels("Harbourside Centre",
                                   "Harbourside Centret"), alt_name=None, category="unspecified", restriction=None,
                                   display_point=anchor_pt, address_id=address))
    out["footprint"].append(feature("footprint", uid("footprint"), plane.wgs(outline), category="ground",
                                    name=None, building_ids=[building]))
    level_id = {}
    for lv in fc["levels"]:
        o = lv["ordinal"]
        level_id[o] = uid("level", o)
        out["level"].append(feature(
            "level", level_id[o], plane.wgs(outline), category="parking" if o < 0 else "unspecified",
            restriction=None, outdoor=False, ordinal=o, name=labels(lv["name"], DA_LEVEL[o][0]),
            short_name=labels(lv["short_name"], DA_LEVEL[o][1]), display_point=anchor_pt, address_id=None,
            building_ids=[building]))
    _units(out, zones, plane, level_id)
    _doors(out, zones, plane, level_id, outline)
    return out


def _units(out: dict, zones: list, plane: Plane, level_id: dict) -> None:
    lifts = {lv: [g for p, g in zones if p["level"] == lv and {"escalator", "lift"} & set(p["tags"])]
             for lv in level_id}
    court = {p["level"]: p["external_id"] for p, _ in zones if p["kind"] == "food_court"}
    for p, g in zones:
        eid, lv, name = p["external_id"], p["level"], p["name"]
        kind, tags = p["kind"], set(p["tags"])
        common = {"level_id": level_id.get(lv), "display_point": plane.point(*g.representative_point().coords[0])}
        if kind in ("corridor", "parking", "food_court") or tags & {"escalator", "lift"}:
            category = ("lobby" if "lobby" in tags else "walkway" if kind == "corridor" else
                        "foodservice" if kind == "food_court" else "escalator" if "escalator" in tags else
                        "elevator" if "lift" in tags else "parking")
            if kind == "corridor":  # units tile the floor: the corridor goes round escalators and lifts
                g = g.difference(unary_union(lifts[lv]))
            out["unit"].append(feature("unit", uid("unit", eid), plane.wgs(g), category=category,
                                       restriction=None, accessibility=None, name=labels(name), alt_name=None,
                                       **common))
            if tags & {"escalator", "lift"}:
                out["amenity"].append(_amenity("escalator" if "escalator" in tags else "elevator", name,
                                               g.centroid.coords[0], [uid("unit", eid)], plane))
        elif kind in ("pickup", "custom"):  # pickups and the fountain court: drawn areas, not rooms
            area = g.buffer(p["radius_m"], quad_segs=16) if p.get("radius_m") else g
            out["geofence"].append(feature("geofence", uid("geofence", eid), plane.wgs(area), category="geofence",
                                           restriction=None, name=labels(name), alt_name=None, correlation_id=None,
                                           display_point=common["display_point"], building_ids=None,
                                           level_ids=[level_id[lv]], parents=None))
        elif kind == "store":
            _store(out, p, g, plane, common, uid("unit", court[lv]) if "kiosk" in tags else None)
    for lv, lid in level_id.items():
        if lv < 0:
            continue
        for category, en, danish, g in TOILETS:
            unit = uid("unit", f"L{lv}-WC-{category}")
            out["unit"].append(feature("unit", unit, plane.wgs(g), category=category, restriction=None,
                                       accessibility=["wheelchair"] if "wheelchair" in category else None,
                                       name=labels(en, danish), alt_name=None, level_id=lid,
                                       display_point=plane.point(*g.centroid.coords[0])))
            out["amenity"].append(_amenity(category, en, g.centroid.coords[0], [unit], plane, danish))
        for category, en, danish, xy in OFF_CORRIDOR.get(lv, []):
            walkway = uid("unit", f"L{lv}-COR")
            out["amenity"].append(_amenity(category, en, xy, [walkway], plane, danish))


def _store(out: dict, p: dict, g: shapely.Geometry, plane: Plane, common: dict, court_unit: str | None) -> None:
    eid, store = p["external_id"], p["store"]
    anchor, space = uid("anchor", eid), uid("kiosk" if court_unit else "unit", eid)
    alt = labels(f"Unit {eid}", f"Lejemål {eid}")
    named = labels(p["name"]) if p["name"] != store["name"] else None
    if court_unit:  # a kiosk stands in the food-service unit; its anchor lies in that unit
        out["kiosk"].append(feature("kiosk", space, plane.wgs(g), name=named, alt_name=alt, anchor_id=anchor,
                                    **common))
    else:
        category = "movietheater" if store["category"] == "cinema" else "room"
        out["unit"].append(feature("unit", space, plane.wgs(g), category=category, restriction=None,
                                   accessibility=None, name=named, alt_name=alt, **common))
    out["anchor"].append(feature("anchor", anchor, plane.point(*g.representative_point().coords[0]),
                                 address_id=None, unit_id=court_unit or space))
    out["occupant"].append(feature(
        "occupant", uid("occupant", eid), None, name={"en": store["name"]},
        category=OCCUPANT_CATEGORY[store["category"]], anchor_id=anchor, hours=to_osm(store["opening_hours"]),
        phone=None, website=None, validity=VALIDITY.get(store["name"]),
        correlation_id=uid("brand", store["name"]) if "anchor" in p["tags"] else None))


def _amenity(category: str, en: str, xy: tuple, units: list[str], plane: Plane, danish: str | None = None) -> dict:
    return feature("amenity", uid("amenity", category, *units), plane.point(*xy), category=category,
                   accessibility=["wheelchair"] if "wheelchair" in category else None, name=labels(en, danish),
                   alt_name=None, hours=None, phone=None, website=None, unit_ids=units, address_id=None,
                   correlation_id=None)


def _doors(out: dict, zones: list, plane: Plane, level_id: dict, outline: shapely.Geometry) -> None:
    """Outside doors where the mall's entrances meet the outline, a car ramp on P1, a door on every shop front."""
    door = {"type": "sliding", "automatic": True, "material": "glass"}
    for p, g in zones:
        lv = p["level"]
        if p["kind"] == "entrance":
            line = shapely.line_merge(g.boundary.intersection(outline.boundary))
            category = "pedestrian.principal" if "main" in p["tags"] else "pedestrian"
            out["opening"].append(_opening(p["external_id"], line, category, door, labels(p["name"]), level_id[lv],
                                           plane))
        elif p["kind"] == "store" and "kiosk" not in p["tags"]:
            walk = unary_union([h for q, h in zones if q["level"] == lv and q["kind"] in ("corridor", "food_court")
                                and not ("food-court" in p["tags"] and q["kind"] == "corridor")])
            front = shapely.line_merge(g.exterior.intersection(walk.buffer(0.01)))
            longest = max(shapely.get_parts(front), key=lambda s: s.length)
            half = min(1.5, longest.length / 4)
            mid = longest.length / 2
            line = substring(longest, mid - half, mid + half)
            out["opening"].append(_opening(p["external_id"], line, "pedestrian",
                                           {"type": "shutter", "automatic": False, "material": "metal"},
                                           None, level_id[lv], plane))
    ramp = LineString([(220, 40), (220, 47)])  # cars come down the ramp through the east wall of P1
    out["opening"].append(_opening("P1-RAMP", ramp, "automobile", {"type": "shutter", "automatic": True,
                          "material": "metal"}, labels("Car park ramp", "Rampe til parkering"), level_id[-1], plane))


def _opening(key: str, line: shapely.Geometry, category: str, door: dict, name: dict | None, level: str,
             plane: Plane) -> dict:
    return feature("opening", uid("opening", key), plane.wgs(line), category=category, accessibility=None,
                   access_control=None, door=door, name=name, alt_name=None,
                   display_point=plane.point(*line.interpolate(0.5, normalized=True).coords[0]), level_id=level)


def archive(files: dict[str, list[dict]]) -> bytes:
    """The zip: manifest first, then the feature files by name, fixed timestamps, deflated."""
    manifest = {"version": "1.0.0", "created": CREATED, "generated_by": "mallfence zones/imdf_export.py",
                "language": "en", "extensions": None}
    members = [("manifest.json", manifest)] + [
        (f"{kind}.geojson", {"type": "FeatureCollection", "features": items}) for kind, items in sorted(files.items())]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, doc in members:
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 15, 12, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, json.dumps(doc, indent=1, ensure_ascii=False) + "\n", compresslevel=9)
    return buf.getvalue()


def check(fc: dict, data: bytes) -> list[str]:
    """Problems found when mallfence's own import plans the archive against the GeoJSON it came from."""
    plan = build_plan(read_features(read_zip(data, source=TARGET.name)))
    problems = [f"warning: {file}: {msg}" for (file, msg) in plan.warnings]
    planned = {(z.data.name, z.data.level): z.data for z in plan.zones}
    proj = LocalProjection(*plan.anchor)
    for f in fc["features"]:
        p = f["properties"]
        got = planned.get((p["name"], p["level"]))
        if got is None:
            problems.append(f"{p['external_id']} {p['name']!r}: no zone of that name on level {p['level']}")
            continue
        point = shape(f["geometry"]).representative_point()  # a circle's centre, for the fountain
        if not proj.geometry_to_local(shape(got.geometry)).buffer(0.01).covers(proj.geometry_to_local(point)):
            problems.append(f"{p['external_id']}: the planned zone does not cover the zone's own point")
        if p.get("store") and (got.store is None or got.store.name != p["store"]["name"]
                               or got.store.opening_hours.model_dump(mode="json") != p["store"]["opening_hours"]):
            problems.append(f"{p['external_id']}: store or hours differ")
    if len(plan.zones) != len(fc["features"]):
        problems.append(f"{len(plan.zones)} zones planned for {len(fc['features'])} in the GeoJSON")
    return problems


def main(target: Path = TARGET) -> int:
    fc = json.loads(SOURCE.read_text(encoding="utf-8"))
    files = build(fc)
    assert all(from_osm(o["properties"]["hours"]) for o in files["occupant"])
    data = archive(files)
    problems = check(fc, data)
    print(f"{target.name}: " + ", ".join(f"{len(v)} {k}" for k, v in sorted(files.items())) + f"; {len(data)} bytes")
    for problem in problems:
        print("  PROBLEM:", problem)
    if problems:
        print(f"  -> {target.name}: FAILED, not written")
        return 1
    target.write_bytes(data)
    print(f"  -> {target.name}: ok, written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
