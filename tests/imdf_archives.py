"""Small IMDF archives for tests, drawn in local metres around tests.factories.ANCHOR.

The mall: a 60 m x 40 m building, two levels. Ground floor: a walkway (with a hole for an escalator),
two shops with occupants, a vacant shop, a restroom, a food hall with a coffee kiosk; a main door on
the west wall and a shop door inside; a pickup geofence. First floor: a walkway and a cinema.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import LineString, Point, box
from shapely.geometry.base import BaseGeometry

from tests.factories import geojson

MANIFEST = {"version": "1.0.0", "created": "2025-01-15T12:00:00Z", "generated_by": "tests", "language": "en"}
OUTLINE = box(0, 0, 60, 40)
ESCALATOR = box(30, 18, 42, 21)
SHOP_HOURS = "Mo-Sa 10:00-18:00; Su off"
# Where to stand to be in each zone (local metres, level) and the zone's name there.
POINTS = {
    "Tideline Books": ((5, 5), 0), "Pier Nine Denim": ((25, 5), 0), "Walkway (ground)": ((10, 20), 0),
    "Escalators (ground)": ((36, 19.5), 0), "Food hall": ((20, 35), 0), "Brew Cart": ((32, 32), 0),
    "Main doors": ((2, 20), 0), "Pickup point": ((52, 18), 0), "Lumen Cinema": ((10, 5), 1),
}


def feature(kind: str, fid: str, geom: BaseGeometry | None, **props: Any) -> dict[str, Any]:
    return {"id": fid, "type": "Feature", "feature_type": kind, "geometry": None if geom is None else geojson(geom),
            "properties": props}


def en(text: str, danish: str | None = None) -> dict[str, str]:
    return {"en": text, **({"da": danish} if danish else {})}


def mall() -> dict[str, list[dict[str, Any]]]:
    """The feature files of the test mall, by feature type (a fresh copy to change)."""
    def unit(fid: str, geom: BaseGeometry, category: str, level: str, name: str | None = None) -> dict:
        return feature("unit", fid, geom, category=category, restriction=None, accessibility=None,
                       name=en(name) if name else None, alt_name=None, level_id=level, display_point=None)

    def tenant(key: str, name: str, category: str, unit_id: str, at: tuple[float, float], hours: str | None):
        return (feature("occupant", f"occ-{key}", None, name=en(name), category=category, anchor_id=f"anc-{key}",
                        hours=hours, phone=None, website=None, validity=None, correlation_id=None),
                feature("anchor", f"anc-{key}", Point(at), address_id=None, unit_id=unit_id))

    occupants, anchors = zip(
        tenant("books", "Tideline Books", "books", "u-shop1", (10, 7), SHOP_HOURS),
        tenant("denim", "Pier Nine Denim", "clothing", "u-shop2", (30, 7), "Mo-Fr 10:00-19:00; PH off"),
        tenant("coffee", "Brew Cart", "cafe", "u-food", (32, 32), "Mo-Su 08:00-20:00"),
        tenant("cinema", "Lumen Cinema", "cinema", "u-cinema", (15, 7), "Mo-Su 11:00-23:30"),
        strict=True)
    files = {
        "address": [feature("address", "addr", None, address="1 Test Street", unit=None, locality="Manchester",
                            province=None, country="GB", postal_code="M1 1AA", postal_code_ext=None)],
        "venue": [feature("venue", "venue", OUTLINE, category="shoppingcenter", restriction=None,
                          name=en("Test Arcade", "Testarkaden"), alt_name=None, hours="Mo-Sa 09:00-20:00",
                          phone=None, website=None, display_point=geojson(Point(30, 20)), address_id="addr")],
        "building": [feature("building", "bldg", None, name=None, alt_name=None, category="unspecified",
                             restriction=None, display_point=None, address_id=None)],
        "level": [feature("level", "lvl-0", OUTLINE, category="unspecified", restriction=None, outdoor=False,
                          ordinal=0, name=en("Ground floor", "Stueetage"), short_name=en("G", "St"),
                          display_point=None, address_id=None, building_ids=["bldg"]),
                  feature("level", "lvl-1", OUTLINE, category="unspecified", restriction=None, outdoor=False,
                          ordinal=1, name=en("First floor", "1. sal"), short_name=en("1"), display_point=None,
                          address_id=None, building_ids=["bldg"])],
        "unit": [unit("u-walk0", box(0, 15, 60, 25).difference(ESCALATOR), "walkway", "lvl-0", "Walkway (ground)"),
                 unit("u-esc0", ESCALATOR, "escalator", "lvl-0", "Escalators (ground)"),
                 unit("u-shop1", box(0, 0, 20, 15), "room", "lvl-0"),
                 unit("u-shop2", box(20, 0, 40, 15), "room", "lvl-0"),
                 unit("u-shop3", box(40, 0, 60, 15), "room", "lvl-0"),
                 unit("u-wc", box(0, 25, 10, 40), "restroom", "lvl-0", "Toilets"),
                 unit("u-food", box(10, 25, 60, 40), "foodservice", "lvl-0", "Food hall"),
                 unit("u-walk1", box(0, 15, 60, 25), "walkway", "lvl-1", "Walkway (first)"),
                 unit("u-cinema", box(0, 0, 30, 15), "movietheater", "lvl-1")],
        "kiosk": [feature("kiosk", "k-coffee", box(30, 30, 34, 34), name=None, alt_name=None, anchor_id="anc-coffee",
                          level_id="lvl-0", display_point=None)],
        "occupant": list(occupants),
        "anchor": list(anchors),
        "opening": [feature("opening", "door-main", LineString([(0, 17), (0, 23)]), category="pedestrian.principal",
                            accessibility=None, access_control=None, door=None, name=en("Main doors", "Hovedindgang"),
                            alt_name=None, display_point=None, level_id="lvl-0"),
                    feature("opening", "door-books", LineString([(8, 15), (11, 15)]), category="pedestrian",
                            accessibility=None, access_control=None, door=None, name=None, alt_name=None,
                            display_point=None, level_id="lvl-0")],
        "amenity": [feature("amenity", "am-esc", Point(36, 19.5), category="escalator", name=None,
                            unit_ids=["u-esc0"], accessibility=None, alt_name=None, hours=None, phone=None,
                            website=None, address_id=None, correlation_id=None),
                    feature("amenity", "am-wc", Point(5, 30), category="restroom", name=en("Toilets"),
                            unit_ids=["u-wc"], accessibility=None, alt_name=None, hours=None, phone=None,
                            website=None, address_id=None, correlation_id=None)],
        "geofence": [feature("geofence", "gf-pickup", box(50, 16, 54, 20), category="geofence", restriction=None,
                             name=en("Pickup point", "Afhentning"), alt_name=None, correlation_id=None,
                             display_point=None, building_ids=None, level_ids=["lvl-0"], parents=None)],
    }
    return copy.deepcopy(files)


def find(files: dict[str, list[dict[str, Any]]], fid: str) -> dict[str, Any]:
    """The feature with id ``fid``, to change in place."""
    return next(f for items in files.values() for f in items if f.get("id") == fid)


def remove(files: dict[str, list[dict[str, Any]]], fid: str) -> None:
    for items in files.values():
        items[:] = [f for f in items if f.get("id") != fid]


def zip_archive(files: dict[str, list[dict[str, Any]]], *, manifest: dict[str, Any] | None = MANIFEST,
                extra: dict[str, bytes] | None = None, folder: str = "") -> bytes:
    """The files as an IMDF .zip (manifest None leaves it out; ``extra`` adds raw members)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr(f"{folder}manifest.json", json.dumps(manifest))
        for kind, items in files.items():
            zf.writestr(f"{folder}{kind}.geojson", json.dumps({"type": "FeatureCollection", "features": items}))
        for name, body in (extra or {}).items():
            zf.writestr(name, body)
    return buf.getvalue()


def write_folder(path: Path, files: dict[str, list[dict[str, Any]]], manifest: dict[str, Any] = MANIFEST) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(json.dumps(manifest))
    for kind, items in files.items():
        (path / f"{kind}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def local_area(zone: dict[str, Any]) -> BaseGeometry:
    """A zone from the API, back in the local metres it was drawn in."""
    from tests.factories import PROJ

    return PROJ.geometry_to_local(shapely.geometry.shape(zone["geometry"]))
