"""IMDF features to mallfence zones: the mapping table, names, hours, validity, doors, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import shapely
from shapely.geometry import LineString, Point, box

from mallfence.errors import Invalid
from mallfence.venues.imdf_archive import read_zip
from mallfence.venues.imdf_features import label, read_features
from mallfence.venues.imdf_plan import Plan, build_plan
from tests.factories import PROJ, geojson
from tests.imdf_archives import SHOP_HOURS, feature, find, mall, remove, zip_archive

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def plan(files: dict[str, list[dict[str, Any]]], **kw: Any) -> Plan:
    return build_plan(read_features(read_zip(zip_archive(files), source="test.zip")), now=NOW, **kw)


def zones(p: Plan) -> dict[str, Any]:
    return {z.data.name: z.data for z in p.zones}


def skipped(p: Plan) -> dict[str, str]:
    """feature id -> why it was left out."""
    return {fid: msg for (_, msg), ids in p.skipped.items() for fid in ids}


def local(geometry: dict[str, Any]) -> shapely.Geometry:
    return PROJ.geometry_to_local(shapely.geometry.shape(geometry))


EXPECTED = {  # name -> (kind, level, tags)
    "Test Arcade": ("venue", None, ["shoppingcenter"]),
    "Tideline Books": ("store", 0, ["books"]),
    "Pier Nine Denim": ("store", 0, ["clothing"]),
    "Brew Cart": ("store", 0, ["cafe"]),  # a kiosk with its occupant
    "Lumen Cinema": ("store", 1, ["cinema"]),  # an occupied movietheater unit
    "Walkway (ground)": ("corridor", 0, ["walkway"]),
    "Walkway (first)": ("corridor", 1, ["walkway"]),
    "Escalators (ground)": ("custom", 0, ["escalator"]),
    "Food hall": ("food_court", 0, ["foodservice"]),
    "Main doors": ("entrance", 0, ["pedestrian.principal"]),
    "Pickup point": ("custom", 0, ["geofence"]),
}


def test_the_test_mall_maps_to_the_documented_kinds() -> None:
    p = plan(mall())
    assert {n: (z.kind, z.level, z.tags) for n, z in zones(p).items()} == EXPECTED
    assert [(lv.ordinal, lv.name, lv.short_name) for lv in p.levels] == [(0, "Ground floor", "G"),
                                                                        (1, "First floor", "1")]
    assert (p.venue_name, p.country, p.language) == ("Test Arcade", "GB", "en")
    assert skipped(p) == {
        "u-shop3": "vacant room (no occupant anchored in it)",
        "u-wc": "restrooms, showers and nursing rooms are never geofenced (privacy)",
        "door-books": "inside door (not on its level's outline): mallfence has no door zones",
        "am-wc": "its unit is not a zone, so there is no zone to note it on",
    }
    assert p.ignored_types == {"building": 1}
    assert dict(p.warnings) == {}


def test_stores_come_from_occupants_with_their_hours_and_ids() -> None:
    p = plan(mall())
    books = zones(p)["Tideline Books"]
    assert books.external_id == "u-shop1"  # the unit's id: the space stays when tenants change
    assert books.store.name == "Tideline Books" and books.store.category == "books"
    assert books.store.opening_hours.mon == [("10:00", "18:00")] and books.store.opening_hours.sun == []
    assert books.metadata["hours"] == SHOP_HOURS
    assert books.metadata["occupant"]["id"] == "occ-books"
    assert zones(p)["Brew Cart"].external_id == "k-coffee"
    assert ("occupant.geojson", "hours: holiday rule (PH) dropped: mallfence has no holiday calendar") in p.notes


def test_narrow_zones_get_a_smaller_enter_margin_and_amenities_land_on_their_zone() -> None:
    esc = zones(plan(mall()))["Escalators (ground)"]
    assert esc.presence.enter_margin_m == 1.0  # 3 m wide: the custom 1.5 m would leave no core
    assert esc.metadata["amenities"] == [{"id": "am-esc", "category": "escalator", "names": {}}]
    assert local(esc.geometry).buffer(-esc.presence.enter_margin_m).area > 1.0


def test_an_outside_door_becomes_an_entrance_reaching_into_the_building() -> None:
    doors = zones(plan(mall()))["Main doors"]
    assert shapely.hausdorff_distance(local(doors.geometry), box(0, 17, 4, 23)) < 0.02  # rounded to 7 dp


@pytest.mark.parametrize(("category", "occupied", "kind", "reason"), [
    ("walkway", False, "corridor", None),
    ("lobby", False, "corridor", None),
    ("ramp", False, "corridor", None),
    ("parking", False, "parking", None),
    ("foodservice", False, "food_court", None),
    ("escalator", False, "custom", None),
    ("elevator", False, "custom", None),
    ("stairs", False, "custom", None),
    ("room", False, None, "vacant room"),
    ("unspecified", False, None, "vacant unspecified"),
    ("room", True, "store", None),
    ("foodservice", True, "store", None),
    ("movietheater", True, "store", None),
    ("walkway", True, "corridor", "anchored in a walkway unit"),  # a cart in the corridor is no store
    ("restroom.female", False, None, "privacy"),
    ("restroom", True, None, "privacy"),
    ("opentobelow", False, None, "has no mallfence zone kind"),
    ("structure", False, None, "has no mallfence zone kind"),
])
def test_unit_categories(category: str, occupied: bool, kind: str | None, reason: str | None) -> None:
    files = mall()
    find(files, "u-shop3")["properties"]["category"] = category
    if occupied:
        find(files, "anc-denim")["properties"]["unit_id"] = "u-shop3"
        find(files, "anc-denim")["geometry"] = geojson(Point(50, 7))
    p = plan(files)
    got = [z.data for z in p.zones if z.feature_id == "u-shop3"]
    assert [z.kind for z in got] == ([kind] if kind else [])
    if reason:
        assert any(reason in msg for msg in skipped(p).values()), skipped(p)
    if category == "elevator":
        assert got[0].tags == ["elevator", "lift"]


def test_second_occupant_of_a_unit_is_skipped() -> None:
    files = mall()
    find(files, "anc-denim")["properties"]["unit_id"] = "u-shop1"
    find(files, "anc-denim")["geometry"] = geojson(Point(12, 7))
    p = plan(files)
    assert "shares its unit" in skipped(p)["occ-denim"]
    assert zones(p)["Tideline Books"].store.name == "Tideline Books"


def test_anchor_outside_its_unit_is_a_warning() -> None:
    files = mall()
    find(files, "anc-books")["geometry"] = geojson(Point(50, 35))
    assert plan(files).warnings[("anchor.geojson", "anchor lies outside the unit it names")] == ["anc-books"]


@pytest.mark.parametrize(("labels", "lang", "expected"), [
    ({"en": "Main doors", "da": "Hovedindgang"}, "da", "Hovedindgang"),
    ({"en": "Main doors", "da": "Hovedindgang"}, "en", "Main doors"),
    ({"en-GB": "Main doors", "da": "Hovedindgang"}, "en", "Main doors"),  # same language, other region
    ({"en": "Main doors", "da": "Hovedindgang"}, "da-DK", "Hovedindgang"),
    ({"en": "Main doors", "da": "Hovedindgang"}, "fr", "Hovedindgang"),  # no French: the first by tag
    ("Main doors", "da", "Main doors"),  # a bare string is taken as it is
    (None, "en", None),
])
def test_labels(labels: Any, lang: str, expected: str | None) -> None:
    assert label(labels, lang) == expected


def test_language_picks_the_names_and_every_translation_is_kept() -> None:
    p = plan(mall(), language="da")
    doors = zones(p)["Hovedindgang"]
    assert doors.metadata["names"] == {"en": "Main doors", "da": "Hovedindgang"}
    assert p.venue_name == "Testarkaden" and p.levels[0].name == "Stueetage"


@pytest.mark.parametrize(("validity", "active"), [
    (None, True),
    ({"start": "2025-01-01T00:00:00+01:00", "end": None}, True),
    ({"start": "2025-07-01T00:00:00Z"}, False),  # opens next month
    ({"start": "2024-01-01T00:00:00Z", "end": "2025-05-31T23:59:59Z"}, False),  # closed yesterday
    ({"start": "2024-01-01T00:00:00", "end": "2026-01-01T00:00:00"}, True),  # no offset: read as UTC
])
def test_validity_switches_the_store_zone(validity: dict | None, active: bool) -> None:
    files = mall()
    find(files, "occ-books")["properties"]["validity"] = validity
    assert zones(plan(files))["Tideline Books"].active is active


def test_unreadable_validity_is_ignored_with_a_warning() -> None:
    files = mall()
    find(files, "occ-books")["properties"]["validity"] = {"start": "next tuesday"}
    p = plan(files)
    assert zones(p)["Tideline Books"].active
    key = ("occupant.geojson", "validity.start 'next tuesday' is not a date-time: ignored")
    assert p.warnings[key] == ["occ-books"]


def test_hours_that_cannot_be_converted_are_reported_and_kept() -> None:
    files = mall()
    find(files, "occ-books")["properties"]["hours"] = "Jan-Mar Mo-Fr 10:00-18:00"
    p = plan(files)
    books = zones(p)["Tideline Books"]
    assert books.store.opening_hours.model_dump() == {d: [] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    assert books.metadata["hours"] == "Jan-Mar Mo-Fr 10:00-18:00"
    [(file, msg)] = [k for k in p.warnings if "not converted" in k[1]]
    assert file == "occupant.geojson" and "Tideline Books" in msg and "'Jan' at 0" in msg
    assert p.warnings[(file, msg)] == ["occ-books"]


def test_levels_of_two_buildings_with_one_ordinal_are_one_level() -> None:
    files = mall()
    other = feature("level", "lvl-0-annex", box(60, 0, 80, 40), category="unspecified", ordinal=0,
                    name={"en": "Annex ground"}, short_name={"en": "AG"}, outdoor=False)
    files["level"].append(other)
    files["unit"].append(feature("unit", "u-annex", box(60, 0, 80, 40), category="walkway", name=None,
                                 level_id="lvl-0-annex"))
    p = plan(files)
    assert [lv.ordinal for lv in p.levels] == [0, 1]
    assert next(z.data.level for z in p.zones if z.feature_id == "u-annex") == 0
    assert p.notes[("level.geojson", "levels of several buildings share an ordinal: one mallfence level each")] == [
        "lvl-0-annex"]


def test_geofences_on_several_levels_or_none() -> None:
    files = mall()
    find(files, "gf-pickup")["properties"]["level_ids"] = ["lvl-0", "lvl-1"]
    files["geofence"].append(feature("geofence", "gf-all", box(0, 0, 60, 40), category="paidarea", name=None))
    p = plan(files)
    ids = {z.data.external_id: (z.data.level, z.data.tags) for z in p.zones if z.file == "geofence.geojson"}
    assert ids == {"gf-pickup@0": (0, ["geofence"]), "gf-pickup@1": (1, ["geofence"]), "gf-all": (None, ["paidarea"])}


def test_doors_that_are_not_pedestrian_or_not_outside() -> None:
    files = mall()
    files["opening"].append(feature("opening", "door-ramp", LineString([(60, 2), (60, 8)]), category="automobile",
                                    level_id="lvl-0"))
    files["opening"].append(feature("opening", "door-fire", LineString([(60, 30), (60, 32)]),
                                    category="emergencyexit", level_id="lvl-0"))
    got = skipped(plan(files))
    assert got["door-ramp"] == "automobile opening: only pedestrian doors become entrances"
    assert got["door-fire"] == "emergencyexit opening: only pedestrian doors become entrances"


def test_unknown_files_and_other_versions_are_reported_not_fatal() -> None:
    files = mall()
    data = zip_archive(files, manifest={"version": "2.0.0", "language": "en"},
                       extra={"teleporter.geojson": b'{"type": "FeatureCollection", "features": []}',
                              "README.txt": b"hello"})
    p = build_plan(read_features(read_zip(data)), now=NOW)
    assert p.warnings[("teleporter.geojson", "not an IMDF feature type: ignored")] == [""]
    assert p.warnings[("manifest.json", "version '2.0.0': read as IMDF 1.0.0")] == [""]
    assert ("README.txt", "not an IMDF file: ignored") in p.notes
    assert len(p.zones) == len(EXPECTED)


def _set(fid: str, path: str, value: Any):
    def change(files: dict) -> None:
        target = find(files, fid)
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return change


SELF_CROSSING = geojson(shapely.Polygon([(0, 0), (20, 15), (20, 0), (0, 15), (0, 0)]))
BROKEN = [
    (_set("occ-books", "properties.anchor_id", "anc-nope"), "occupant.geojson feature occ-books",
     "anchor_id 'anc-nope' is not the id of any anchor in anchor.geojson"),
    (_set("anc-books", "properties.unit_id", "u-nope"), "anchor.geojson feature anc-books",
     "unit_id 'u-nope' is not the id of any unit"),
    (_set("u-shop1", "properties.level_id", "lvl-9"), "unit.geojson feature u-shop1",
     "level_id 'lvl-9' is not the id of any level"),
    (_set("anc-books", "properties.unit_id", "lvl-0"), "anchor.geojson feature anc-books", "(it names a level)"),
    (_set("u-shop1", "properties.level_id", None), "unit.geojson feature u-shop1", "level_id is required"),
    (_set("am-esc", "properties.unit_ids", ["u-gone"]), "amenity.geojson feature am-esc", "'u-gone'"),
    (_set("am-esc", "properties.unit_ids", "u-esc0"), "amenity.geojson feature am-esc", "must be an array of ids"),
    (_set("gf-pickup", "properties.level_ids", ["lvl-7"]), "geofence.geojson feature gf-pickup", "'lvl-7'"),
    (_set("k-coffee", "properties.anchor_id", "anc-gone"), "kiosk.geojson feature k-coffee", "'anc-gone'"),
    (_set("door-main", "properties.level_id", "lvl-x"), "opening.geojson feature door-main", "'lvl-x'"),
    (_set("venue", "properties.address_id", "addr-x"), "venue.geojson feature venue", "'addr-x'"),
    (_set("u-shop1", "geometry", SELF_CROSSING), "unit.geojson feature u-shop1", "Self-intersection"),
    (_set("u-shop1", "geometry", geojson(Point(5, 5))), "unit.geojson feature u-shop1",
     "geometry must be Polygon or MultiPolygon, got Point"),
    (_set("u-shop1", "geometry", None), "unit.geojson feature u-shop1", "got null"),
    (_set("door-main", "geometry", geojson(box(0, 0, 1, 1))), "opening.geojson feature door-main",
     "geometry must be LineString, got Polygon"),
    (_set("anc-books", "geometry", {"type": "Point", "coordinates": [float("nan"), 53.0]}),
     "anchor.geojson feature anc-books", "not a finite [longitude, latitude]"),
    (_set("door-main", "geometry", {"type": "LineString", "coordinates": [[-2.24, 53.48]]}),
     "opening.geojson feature door-main", "at least 2 positions"),
    (_set("u-shop1", "geometry.coordinates", [[[-2.2426, 53.4808], [-2.2425, 53.4808], [-2.2425, 53.4809]]]),
     "unit.geojson feature u-shop1", "at least 4 positions"),
    (_set("u-shop1", "feature_type", "level"), "unit.geojson feature u-shop1",
     "feature_type 'level' is another feature type; unit.geojson holds 'unit' features only"),
    (_set("u-shop1", "feature_type", "teleporter"), "unit.geojson feature u-shop1", "an unknown feature type"),
    (_set("u-shop2", "id", "u-shop1"), "unit.geojson feature u-shop1", "id also used by unit.geojson feature 2"),
    (_set("u-shop1", "id", ""), "unit.geojson feature #2", "needs an id"),
    (_set("u-shop1", "type", "Polygon"), "unit.geojson feature u-shop1", "must be a GeoJSON Feature object"),
    (_set("u-shop1", "properties", None), "unit.geojson feature u-shop1", "properties must be an object"),
    (_set("lvl-1", "properties.ordinal", "one"), "level.geojson feature lvl-1", "ordinal must be an integer"),
    (_set("lvl-1", "properties.ordinal", 500), "level.geojson feature lvl-1", "from -20 to 200, got 500"),
    (_set("u-shop1", "properties.name", 42), "unit.geojson feature u-shop1", "name must be a LABELS object"),
    (_set("u-shop1", "properties.name", {"en": ""}), "unit.geojson feature u-shop1", "name must be a LABELS"),
    (lambda f: f["venue"].append(dict(f["venue"][0], id="venue-2")), "venue.geojson",
     "exactly one venue, found 2"),
    (lambda f: f.update(venue=[]), "venue.geojson", "exactly one venue, found 0"),
    (lambda f: f.update(level=[]), "level.geojson", "no levels"),
    (lambda f: f["unit"].append("not a feature"), "unit.geojson feature #9", "must be a GeoJSON Feature"),
]


@pytest.mark.parametrize(("change", "where", "words"), BROKEN)
def test_broken_archives_are_refused_naming_file_feature_and_problem(change, where: str, words: str) -> None:
    files = mall()
    change(files)
    with pytest.raises(Invalid) as info:
        plan(files)
    messages = [i.msg for i in info.value.issues]
    assert any(m.startswith(where) and words in m for m in messages), messages


def test_every_problem_is_named_at_once_without_knock_on_errors() -> None:
    files = mall()
    find(files, "u-shop1")["geometry"] = SELF_CROSSING  # anc-books points at it: no second complaint about that
    find(files, "occ-denim")["properties"]["anchor_id"] = "anc-nope"
    remove(files, "lvl-1")  # u-walk1 and u-cinema lose their level
    with pytest.raises(Invalid) as info:
        plan(files)
    where = sorted(i.loc[:2] for i in info.value.issues)
    assert where == [("occupant.geojson", "occ-denim"), ("unit.geojson", "u-cinema"), ("unit.geojson", "u-shop1"),
                     ("unit.geojson", "u-walk1")]


def test_venue_without_display_point_is_anchored_at_its_centre() -> None:
    files = mall()
    find(files, "venue")["properties"]["display_point"] = None
    p = plan(files)
    assert shapely.distance(PROJ.geometry_to_local(Point(p.anchor)), Point(30, 20)) < 0.01
    assert ("venue.geojson", "no display_point: the anchor is the centre of the outline") in p.notes


def test_kiosk_anchor_in_its_unit_is_no_warning_and_long_ids_keep_their_level() -> None:
    files = mall()
    find(files, "anc-coffee")["geometry"] = geojson(Point(20, 35))  # in the food hall, outside the kiosk
    long_id = "g" * 128
    find(files, "gf-pickup").update(id=long_id)
    find(files, long_id)["properties"]["level_ids"] = ["lvl-0", "lvl-1"]
    p = plan(files)
    assert dict(p.warnings) == {}
    ids = sorted(z.data.external_id for z in p.zones if z.file == "geofence.geojson")
    assert ids == ["g" * 120 + "@0", "g" * 120 + "@1"]
