"""IMDF import over the API: the shipped mall, re-imports that update in place, and all-or-nothing refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Point, box, shape
from shapely.ops import unary_union

from mallfence.spatial.index import VenueIndex, ZoneShape
from mallfence.spatial.projection import LocalProjection
from mallfence.venues import imdf_archive
from tests.factories import geojson
from tests.imdf_archives import find as feature_of
from tests.imdf_archives import mall, remove, zip_archive

ZONES = Path(__file__).resolve().parents[2] / "zones"
SHIPPED = (ZONES / "harbourside-imdf.zip").read_bytes()


def post(client: TestClient, slug: str, data: bytes, **params: Any):
    return client.post(f"/v1/venues/{slug}/import/imdf", content=data, params=params,
                       headers={"content-type": "application/zip"})


def zones_of(client: TestClient, slug: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/venues/{slug}/zones")
    assert r.status_code == 200, r.text
    return r.json()


def test_the_shipped_archive_is_the_sample_mall(client: TestClient) -> None:
    fc = json.loads((ZONES / "harbourside-mall.geojson").read_text())
    assert client.post("/v1/venues", json=fc["venue"]).status_code == 201
    assert client.post("/v1/venues/harbourside/import", json=fc).status_code == 200
    r = post(client, "harbourside-imdf", SHIPPED)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["venue_created"], report["name"], report["timezone"], report["language"]) == (
        True, "Harbourside Centre", "Europe/Copenhagen", "en")
    assert report["timezone_source"] == "guessed from the address country DK"
    assert {k: v["created"] for k, v in report["zones"].items()} == {
        "corridor": 3, "custom": 13, "entrance": 3, "food_court": 1, "parking": 1, "store": 78, "venue": 1}
    assert (report["stores"], report["levels_created"], report["warnings"]) == (78, 3, [])
    assert {n["message"]: len(n["feature_ids"]) for n in report["skipped"]} == {
        "restrooms, showers and nursing rooms are never geofenced (privacy)": 6,
        "inside door (not on its level's outline): mallfence has no door zones": 76,
        "automobile opening: only pedestrian doors become entrances": 1,
        "its unit is not a zone, so there is no zone to note it on": 6,  # the toilets' amenities
    }
    assert report["ignored_types"] == {"building": 1, "footprint": 1}

    from_geojson, from_imdf = zones_of(client, "harbourside"), zones_of(client, "harbourside-imdf")
    kinds = {z["name"]: z["kind"] for z in from_geojson}
    assert {z["name"]: z["kind"] for z in from_imdf} == {
        n: "custom" if k == "pickup" else k for n, k in kinds.items()}  # IMDF has no pickup category
    _same_zones_hold_the_same_points(from_geojson, from_imdf, fc["venue"]["anchor"])

    again = post(client, "harbourside-imdf", SHIPPED).json()
    assert again["total"] == {"created": 0, "updated": 0, "unchanged": 100}
    assert again["venue_created"] is False and again["not_in_archive"] == []
    assert {z["external_id"]: z["id"] for z in zones_of(client, "harbourside-imdf")} == {
        z["external_id"]: z["id"] for z in from_imdf}


def _same_zones_hold_the_same_points(from_geojson: list[dict], from_imdf: list[dict], anchor: list[float]) -> None:
    """At a point of each GeoJSON zone (clear of the zones nested in it), both venues match zones of the same
    names, and the same store with the same hours. One documented difference: IMDF units tile the floor, so
    escalators and lifts are holes in the walkway, not zones inside it."""
    proj = LocalProjection(*anchor)

    def index(zones: list[dict]) -> VenueIndex:
        return VenueIndex(*anchor, [ZoneShape(z["id"], z["level"], _area(z), 0.0, 0.0) for z in zones])

    def names_at(zones: list[dict], lon: np.ndarray, lat: np.ndarray, floors: np.ndarray) -> list[set[str]]:
        by_id = {z["id"]: z for z in zones}
        hits = index(zones).match(lon, lat, floors).per_point(len(lon))
        return [{by_id[i]["name"] for i in ids} for ids in hits]

    local = {z["id"]: proj.geometry_to_local(_area(z)) for z in from_geojson}
    points = []
    for z in from_geojson:
        inner = [local[o["id"]] for o in from_geojson if o["level"] == z["level"] and o["id"] != z["id"]
                 and local[o["id"]].area < local[z["id"]].area]
        own = local[z["id"]].difference(unary_union(inner).buffer(0.5)) if inner else local[z["id"]]
        points.append(own.representative_point())
    lon, lat = proj.to_wgs84(np.array([p.x for p in points]), np.array([p.y for p in points]))
    floors = np.array([float(z["level"]) if z["level"] is not None else 0.0 for z in from_geojson])
    expected, got = names_at(from_geojson, lon, lat, floors), names_at(from_imdf, lon, lat, floors)
    corridors = {z["name"] for z in from_geojson if z["kind"] == "corridor"}
    for z, want, have in zip(from_geojson, expected, got, strict=True):
        if {"escalator", "lift"} & set(z["tags"]):
            want = want - corridors
        assert have == want, (z["external_id"], z["name"])
    stores = {z["name"]: z["store"] for z in from_imdf if z["store"]}
    for z in from_geojson:
        if z["store"]:
            assert stores[z["name"]]["name"] == z["store"]["name"]
            assert stores[z["name"]]["opening_hours"] == z["store"]["opening_hours"], z["name"]


def _area(zone: dict[str, Any]) -> shapely.Geometry:
    geom = shape(zone["geometry"])
    if zone["radius_m"]:
        from mallfence.spatial.geometry import circle_polygon
        return circle_polygon(geom.x, geom.y, zone["radius_m"])
    return geom


def test_reimport_updates_in_place_and_prunes_on_request(client: TestClient) -> None:
    assert post(client, "arcade", zip_archive(mall()), timezone="Europe/London").status_code == 200
    before = {z["external_id"]: z for z in zones_of(client, "arcade")}
    edited = mall()
    feature_of(edited, "occ-books")["properties"]["hours"] = "Mo-Su 09:00-21:00"  # new hours
    feature_of(edited, "u-walk0")["geometry"] = geojson(box(0, 14, 60, 25).difference(box(30, 18, 42, 21)))
    remove(edited, "occ-denim")  # the tenant leaves: u-shop2 is vacant and no longer a zone
    remove(edited, "anc-denim")
    anchor = feature_of(edited, "anc-books") | {"id": "anc-new"}
    anchor = json.loads(json.dumps(anchor))
    anchor["properties"]["unit_id"], anchor["geometry"] = "u-shop3", geojson(Point(50, 7))
    edited["anchor"].append(anchor)
    edited["occupant"].append({**feature_of(edited, "occ-books"), "id": "occ-new",
                               "properties": {"name": {"en": "Copperpot Cookshop"}, "category": "homedecor",
                                              "anchor_id": "anc-new", "hours": "Tu-Sa 10:00-17:00"}})
    feature_of(edited, "lvl-0")["properties"]["name"] = {"en": "Street level"}
    r = post(client, "arcade", zip_archive(edited))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["zones"]["store"] == {"created": 1, "updated": 1, "unchanged": 2}
    assert report["zones"]["corridor"] == {"created": 0, "updated": 1, "unchanged": 1}
    assert (report["levels_updated"], report["not_in_archive"], report["pruned"]) == (1, ["u-shop2"], 0)
    after = {z["external_id"]: z for z in zones_of(client, "arcade")}
    assert after["u-shop1"]["id"] == before["u-shop1"]["id"]  # same zone, updated
    assert after["u-shop1"]["store"]["opening_hours"]["sun"] == [["09:00", "21:00"]]
    assert after["u-shop3"]["store"]["name"] == "Copperpot Cookshop"
    assert "u-shop2" in after  # kept until asked
    assert client.get("/v1/venues/arcade/levels").json()[0]["name"] == "Street level"
    r = post(client, "arcade", zip_archive(edited), prune=True)
    assert r.json()["pruned"] == 1 and r.json()["total"]["updated"] == 0
    assert "u-shop2" not in {z["external_id"] for z in zones_of(client, "arcade")}


def test_a_tenant_moving_out_takes_its_store_along(client: TestClient) -> None:
    moved = mall()
    feature_of(moved, "anc-denim")["properties"]["unit_id"] = "u-food"  # a food-hall tenant...
    feature_of(moved, "anc-denim")["geometry"] = geojson(Point(40, 36))
    post(client, "arcade", zip_archive(moved))
    food = next(z for z in zones_of(client, "arcade") if z["external_id"] == "u-food")
    assert (food["kind"], food["store"]["name"]) == ("store", "Pier Nine Denim")
    r = post(client, "arcade", zip_archive(mall()))  # ...moves back to its shop
    assert r.status_code == 200, r.text
    zones = {z["external_id"]: z for z in zones_of(client, "arcade")}
    assert (zones["u-food"]["kind"], zones["u-food"]["store"]) == ("food_court", None)
    assert zones["u-food"]["id"] == food["id"]
    stores = {s["name"]: s["zone_id"] for s in client.get("/v1/venues/arcade/stores").json()}
    assert stores["Pier Nine Denim"] == zones["u-shop2"]["id"]


def test_validity_in_the_future_imports_an_inactive_store(client: TestClient) -> None:
    files = mall()
    feature_of(files, "occ-books")["properties"]["validity"] = {"start": "2999-01-01T00:00:00Z"}
    report = post(client, "arcade", zip_archive(files)).json()
    books = next(z for z in zones_of(client, "arcade") if z["external_id"] == "u-shop1")
    assert books["active"] is False and books["store"]["name"] == "Tideline Books"
    assert any("not valid today" in n["message"] for n in report["notes"])


def test_names_in_another_language_and_the_rest_kept(client: TestClient) -> None:
    report = post(client, "arkaden", zip_archive(mall()), language="da").json()
    assert (report["name"], report["language"]) == ("Testarkaden", "da")
    doors = next(z for z in zones_of(client, "arkaden") if z["kind"] == "entrance")
    assert doors["name"] == "Hovedindgang" and doors["metadata"]["names"]["en"] == "Main doors"


def test_timezone_parameter_and_guess(client: TestClient) -> None:
    r = post(client, "a1", zip_archive(mall()), timezone="Europe/Dublin").json()
    assert (r["timezone"], r["timezone_source"]) == ("Europe/Dublin", "parameter")
    files = mall()
    remove(files, "addr")
    feature_of(files, "venue")["properties"]["address_id"] = None
    r = post(client, "a2", zip_archive(files)).json()
    assert r["timezone"] == "UTC" and "PATCH the venue" in r["timezone_source"]


def _existing(client: TestClient) -> dict[str, Any]:
    """Everything a refused import must leave as it was."""
    return {"venue": client.get("/v1/venues/arcade").json(), "export": client.get("/v1/venues/arcade/export").json(),
            "stores": client.get("/v1/venues/arcade/stores").json()}


def _edit(change):
    def build() -> bytes:
        files = mall()
        change(files)
        feature_of(files, "venue")["properties"]["name"] = {"en": "Renamed Arcade"}  # would change the venue
        return zip_archive(files)
    return build


def _set(fid: str, key: str, value: Any):
    return _edit(lambda files: feature_of(files, fid)["properties"].__setitem__(key, value))


def _bomb() -> bytes:
    return zip_archive(mall(), extra={"detail.geojson": b" " * (8 * 2**20)})


FAR_AWAY = box(20_000, 0, 20_020, 10)  # 20 km east: a zone mallfence refuses, found only at the last check
BAD = [
    ("occupant -> missing anchor", _set("occ-books", "anchor_id", "anc-nope"), 422,
     "occupant.geojson feature occ-books: anchor_id 'anc-nope' is not the id of any anchor"),
    ("anchor -> missing unit", _edit(lambda f: feature_of(f, "anc-books")["properties"].update(unit_id="u-x")), 422,
     "anchor.geojson feature anc-books: unit_id 'u-x' is not the id of any unit"),
    ("unit -> missing level", _set("u-shop2", "level_id", "lvl-9"), 422,
     "unit.geojson feature u-shop2: level_id 'lvl-9' is not the id of any level"),
    ("self-intersecting ring",
     _edit(lambda f: feature_of(f, "u-shop1").update(geometry=geojson(
         shapely.Polygon([(0, 0), (20, 15), (20, 0), (0, 15), (0, 0)])))), 422,
     "unit.geojson feature u-shop1: invalid geometry: Self-intersection"),
    ("wrong geometry type", _edit(lambda f: feature_of(f, "gf-pickup").update(geometry=geojson(Point(1, 1)))), 422,
     "geofence.geojson feature gf-pickup: geometry must be Polygon or MultiPolygon, got Point"),
    ("unknown feature type", _edit(lambda f: feature_of(f, "u-shop1").update(feature_type="shop")), 422,
     "unit.geojson feature u-shop1: feature_type 'shop' is an unknown feature type"),
    ("zone too far for mallfence", _edit(lambda f: feature_of(f, "u-shop1").update(geometry=geojson(FAR_AWAY))),
     422, "unit.geojson feature u-shop1: zone is 20.0 km from the venue anchor"),
    ("malformed JSON", lambda: zip_archive({}, extra={"unit.geojson": b'{"type": "FeatureCollection", "fea'}), 422,
     "unit.geojson: not valid JSON"),
    ("missing manifest", lambda: zip_archive(mall(), manifest=None), 422, "manifest.json: missing"),
    ("path traversal", lambda: _raw_name(zip_archive(mall(), extra={"xxxxxxxxxxxxxx": b"x"}), "xxxxxxxxxxxxxx",
                                         "../../etc/pass"), 422, "../../etc/pass: unsafe path"),
    ("absolute path", lambda: _raw_name(zip_archive(mall(), extra={"xxxxxxxxxxxxxx": b"x"}), "xxxxxxxxxxxxxx",
                                        "/tmp/evil.json"), 422, "/tmp/evil.json: unsafe path"),
    ("zip bomb", _bomb, 413, "detail.geojson: compression ratio"),
    ("not a zip", lambda: b'{"type": "FeatureCollection", "features": []}', 422, "upload is not a zip archive"),
    ("empty body", lambda: b"", 422, "upload is not a zip archive"),
]


def _raw_name(data: bytes, placeholder: str, name: str) -> bytes:
    assert len(placeholder) == len(name)
    return data.replace(placeholder.encode(), name.encode())


@pytest.mark.parametrize(("case", "body", "status", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_archives_are_refused_and_nothing_changes(client: TestClient, case: str, body, status: int,
                                                      words: str) -> None:
    assert post(client, "arcade", zip_archive(mall())).status_code == 200
    kept = _existing(client)
    r = post(client, "arcade", body())
    assert r.status_code == status, r.text
    messages = [d["msg"] for d in r.json()["detail"]]
    assert any(words in m for m in messages), messages
    assert _existing(client) == kept
    r = post(client, "new-venue", body())  # and a venue it would have created does not exist
    assert r.status_code == status
    assert client.get("/v1/venues/new-venue").status_code == 404


def test_oversized_upload_is_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_UPLOAD_BYTES", 1_000)
    r = post(client, "arcade", zip_archive(mall()))
    assert r.status_code == 413 and "over the limit of 1000" in r.text


def test_form_upload_gets_a_hint(client: TestClient) -> None:
    r = client.post("/v1/venues/arcade/import/imdf", files={"file": ("a.zip", zip_archive(mall()))})
    assert r.status_code == 422 and "Content-Type: application/zip" in r.text


@pytest.mark.parametrize(("slug", "params", "loc"), [
    ("arcade", {"timezone": "Mars/Olympus"}, "timezone"),
    ("Bad_Slug", {}, "slug"),
])
def test_bad_parameters_name_the_field(client: TestClient, slug: str, params: dict, loc: str) -> None:
    r = post(client, slug, zip_archive(mall()), **params)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == loc, r.text
    assert client.get(f"/v1/venues/{slug}").status_code == 404


def test_archive_is_documented_in_openapi(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/venues/{slug}/import/imdf"]["post"]
    assert "application/zip" in op["requestBody"]["content"]
    assert {p["name"] for p in op["parameters"]} >= {"timezone", "language", "prune"}


def test_geojson_import_counts_a_store_edit_as_an_update(client: TestClient) -> None:
    """The upsert steps both importers share: a tenant's new hours are a change, not 'unchanged'."""
    fc = json.loads((ZONES / "harbourside-mall.geojson").read_text())
    client.post("/v1/venues", json=fc["venue"])
    client.post("/v1/venues/harbourside/import", json=fc)
    store = next(f for f in fc["features"] if f["properties"]["external_id"] == "L0-U012")["properties"]["store"]
    store["opening_hours"]["sun"] = []
    r = client.post("/v1/venues/harbourside/import", json=fc).json()
    assert (r["updated"], r["unchanged"]) == (1, 99)
    assert client.post("/v1/venues/harbourside/import", json=fc).json()["unchanged"] == 100
