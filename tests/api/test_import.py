"""GeoJSON import / export: upsert by external_id, all or nothing, problems named per feature."""

from __future__ import annotations

import copy
from typing import Any

import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Point

from tests.factories import create_venue, geojson


def feature(eid: str, local, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geojson(local),
            "properties": {"external_id": eid, "name": eid.title(), "kind": "store", "level": 0, **props}}


def collection() -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "levels": [{"ordinal": 0, "name": "Ground", "short_name": "L0"},
                   {"ordinal": 1, "name": "First", "short_name": "L1"}],
        "features": [
            feature("mall", shapely.box(-10, -10, 100, 60), kind="venue", level=None),
            feature("corridor-0", shapely.box(0, 20, 90, 30), kind="corridor"),
            feature("u1", shapely.box(0, 0, 20, 20),
                    store={"name": "Tideline Books", "category": "books", "opening_hours": {}}),
            feature("u2", shapely.box(20, 0, 40, 20), tags=["fashion"]),
            feature("fountain", Point(60, 25), kind="custom", radius_m=3.0),
            feature("u3", shapely.Polygon([(0, 30), (20, 30), (20, 50), (0, 50)], [[(5, 35), (15, 35), (15, 45),
                                                                                 (5, 45)]]), level=1),
        ],
    }


def test_import_creates_levels_zones_stores_and_exports_back(client: TestClient) -> None:
    create_venue(client, levels=())
    r = client.post("/v1/venues/mall/import", json=collection())
    assert r.status_code == 200, r.text
    assert r.json() | {} == {"created": 6, "updated": 0, "unchanged": 0, "levels_created": 2, "stores": 1,
                             "zones": 6}
    exported = client.get("/v1/venues/mall/export").json()
    assert [lv["short_name"] for lv in exported["levels"]] == ["L0", "L1"]
    by_eid = {f["properties"]["external_id"]: f for f in exported["features"]}
    assert by_eid["u1"]["properties"]["store"]["name"] == "Tideline Books"
    assert by_eid["fountain"]["geometry"]["type"] == "Point" and by_eid["fountain"]["properties"]["radius_m"] == 3
    assert len(by_eid["u3"]["geometry"]["coordinates"]) == 2  # the hole survived
    # re-importing the export changes nothing
    r = client.post("/v1/venues/mall/import", json=exported)
    assert r.json()["unchanged"] == 6 and r.json()["created"] == 0


def test_reimport_updates_in_place_and_prunes_on_request(client: TestClient) -> None:
    create_venue(client, levels=())
    client.post("/v1/venues/mall/import", json=collection())
    ids = {z["external_id"]: z["id"] for z in client.get("/v1/venues/mall/zones").json()}
    changed = collection()
    changed["features"][3]["properties"]["name"] = "Renamed"
    del changed["features"][4]
    r = client.post("/v1/venues/mall/import", json=changed)
    assert (r.json()["updated"], r.json()["unchanged"]) == (1, 4)
    zones = {z["external_id"]: z for z in client.get("/v1/venues/mall/zones").json()}
    assert zones["u2"]["name"] == "Renamed" and zones["u2"]["id"] == ids["u2"]  # same zone, updated
    assert "fountain" in zones  # not pruned without asking
    client.post("/v1/venues/mall/import", params={"prune": True}, json=changed)
    assert "fountain" not in {z["external_id"] for z in client.get("/v1/venues/mall/zones").json()}


def test_one_bad_feature_stores_nothing_and_every_problem_is_named(client: TestClient) -> None:
    create_venue(client, levels=())
    bad = collection()
    ring = bad["features"][2]["geometry"]["coordinates"][0]
    ring[-1] = [ring[-1][0] + 0.001, ring[-1][1]]  # u1: ring no longer closed
    bad["features"][3]["properties"]["level"] = 5  # u2: unknown level
    bad["features"][5]["properties"]["external_id"] = "u1"  # duplicate of feature 2
    bad["features"][1]["geometry"]["coordinates"][0][1] = [float("nan"), 0.0]  # corridor: NaN
    r = client.post("/v1/venues/mall/import",
                    content=_dumps_allowing_nan(bad), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    messages = [p["msg"] for p in r.json()["detail"]]
    assert any(m.startswith("feature 2 (external_id 'u1'): ") and "not closed" in m for m in messages), messages
    assert any(m.startswith("feature 3 (external_id 'u2'): ") and "unknown level 5" in m for m in messages)
    assert any(m.startswith("feature 5 (external_id 'u1'): ") and "duplicate" in m for m in messages)
    assert any(m.startswith("feature 1 (external_id 'corridor-0'): ") and "finite" in m for m in messages)
    assert client.get("/v1/venues/mall/zones").json() == []
    assert client.get("/v1/venues/mall/levels").json() == []  # the file's levels were not kept either


def _dumps_allowing_nan(value: Any) -> bytes:
    import json

    return json.dumps(value, allow_nan=True).encode()


def test_feature_without_external_id_or_with_too_many_vertices(client: TestClient) -> None:
    create_venue(client, levels=(0,))
    fc = collection()
    fc["features"][2]["properties"].pop("external_id")
    big = shapely.Point(50, 50).buffer(20, quad_segs=600)  # 2,401 vertices
    fc["features"][3]["geometry"] = geojson(big)
    r = client.post("/v1/venues/mall/import", json=fc)
    assert r.status_code == 422
    text = r.text
    assert "feature 2: external_id is required" in text
    assert "more than the limit of 2000" in text


def test_not_a_feature_collection(client: TestClient) -> None:
    create_venue(client, levels=())
    for body, words in [({"type": "Feature"}, "FeatureCollection"),
                        ({"type": "FeatureCollection", "features": {}}, "array"),
                        ({"type": "FeatureCollection", "features": [1]}, "Feature object"),
                        ({"type": "FeatureCollection", "levels": [{"ordinal": "x"}], "features": []}, "level 0")]:
        r = client.post("/v1/venues/mall/import", json=body)
        assert r.status_code == 422 and words in r.text, (body, r.text)


def test_malformed_json_body_is_422(client: TestClient) -> None:
    create_venue(client, levels=())
    r = client.post("/v1/venues/mall/import", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_export_is_independent_of_import_order(client: TestClient) -> None:
    create_venue(client, levels=())
    fc = collection()
    reordered = copy.deepcopy(fc)
    reordered["features"].reverse()
    client.post("/v1/venues/mall/import", json=reordered)
    assert client.post("/v1/venues/mall/import", json=fc).json()["unchanged"] == 6
