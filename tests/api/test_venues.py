"""Operator API: venues, levels, zones, stores — behaviour and refusals, on SQLite and PostGIS."""

from __future__ import annotations

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import Point

from tests.factories import INSTANT, create_venue, create_zone, geojson


def test_venue_lifecycle(client: TestClient) -> None:
    create_venue(client, "harbour", levels=(-1, 0, 1))
    r = client.get("/v1/venues/harbour")
    assert r.status_code == 200
    assert [lv["ordinal"] for lv in r.json()["levels"]] == [-1, 0, 1]
    r = client.patch("/v1/venues/harbour", json={"name": "Harbour Centre"})
    assert r.json()["name"] == "Harbour Centre"
    assert client.delete("/v1/venues/harbour").status_code == 204
    assert client.get("/v1/venues/harbour").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"slug": "Bad Slug", "name": "x", "timezone": "UTC", "anchor": [0, 0]}, "slug", "pattern"),
        ({"slug": "ok", "name": "x", "timezone": "Mars/Olympus", "anchor": [0, 0]}, "timezone", "unknown IANA"),
        ({"slug": "ok", "name": "x", "timezone": "UTC", "anchor": [200, 0]}, "anchor", "longitude"),
        ({"slug": "ok", "name": "x", "timezone": "UTC"}, "anchor", "required"),
        ({"slug": "ok", "name": "x", "timezone": "UTC", "anchor": [0, 0], "colour": "red"}, "colour", "extra"),
    ],
)
def test_bad_venue_names_the_field(client: TestClient, body: dict, field: str, words: str) -> None:
    r = client.post("/v1/venues", json=body)
    assert r.status_code == 422
    problem = r.json()["detail"][0]
    assert field in problem["loc"]
    assert words.lower() in problem["msg"].lower()


def test_duplicate_slug_and_level_conflict(client: TestClient) -> None:
    create_venue(client, "mall")
    r = client.post("/v1/venues", json={"slug": "mall", "name": "x", "timezone": "UTC", "anchor": [0, 0]})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = client.post("/v1/venues/mall/levels", json={"ordinal": 0, "name": "again"})
    assert r.status_code == 409


def test_zone_crud_and_effective_presence(client: TestClient) -> None:
    create_venue(client)
    zone = create_zone(client, "mall", shapely.box(0, 0, 20, 10), name="Books", external_id="u1",
                       tags=["books"], presence={"dwell_s": 90})
    assert zone["level"] == 0 and zone["tags"] == ["books"]
    assert zone["effective_presence"]["dwell_s"] == 90
    assert zone["effective_presence"]["enter_margin_m"] == 1.5  # the store default, not overridden
    r = client.patch(f"/v1/venues/mall/zones/{zone['id']}", json={"name": "Books & Maps", "level": 1})
    assert r.status_code == 200 and r.json()["name"] == "Books & Maps" and r.json()["level"] == 1
    listed = client.get("/v1/venues/mall/zones", params={"level": 1, "tag": "books"}).json()
    assert [z["id"] for z in listed] == [zone["id"]]
    assert client.get("/v1/venues/mall/zones", params={"level": 0}).json() == []
    assert client.delete(f"/v1/venues/mall/zones/{zone['id']}").status_code == 204
    assert client.get(f"/v1/venues/mall/zones/{zone['id']}").status_code == 404


def test_circle_zone(client: TestClient) -> None:
    create_venue(client)
    centre = geojson(Point(30, 30))
    zone = create_zone(client, "mall", Point(30, 30), kind="custom", radius_m=6.0)
    assert zone["geometry"]["type"] == "Point" and zone["radius_m"] == 6.0
    assert zone["geometry"]["coordinates"] == pytest.approx(list(centre["coordinates"]))


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        # a bow-tie: the ring crosses itself
        ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0.001, 0.001], [0.001, 0], [0, 0.001], [0, 0]]]}},
         "geometry", "self-intersection"),
        # first and last positions differ
        ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0, 1e-4], [1e-4, 1e-4], [1e-4, 0]]]}},
         "geometry", "not closed"),
        ({"level": 7}, "level", "unknown level 7"),
        ({"kind": "spaceport"}, "kind", "input should be"),
        # 0.2 m wide: the store's 1.5 m enter margin leaves nothing
        ({"geometry": geojson(shapely.box(0, 0, 0.2, 10))}, "enter_margin_m", "too narrow"),
        # a zone on the other side of the planet
        ({"geometry": {"type": "Polygon", "coordinates": [[[100, 10], [100, 10.001], [100.001, 10.001],
                                                           [100, 10]]]}}, "geometry", "km from the venue"),
        ({"geometry": {"type": "Point", "coordinates": [-2.2426, 53.4808]}}, "radius_m", "needs radius_m"),
    ],
)
def test_bad_zone_is_refused_with_its_reason(client: TestClient, change: dict, loc: str, words: str) -> None:
    create_venue(client)
    body = {"name": "Z", "kind": "store", "level": 0, "geometry": geojson(shapely.box(0, 0, 20, 10)),
            "presence": INSTANT, **change}
    r = client.post("/v1/venues/mall/zones", json=body)
    assert r.status_code == 422, r.text
    problems = r.json()["detail"]
    assert any(loc in p["loc"] and words.lower() in p["msg"].lower() for p in problems), problems
    assert client.get("/v1/venues/mall/zones").json() == []


def test_stores_link_to_zones(client: TestClient) -> None:
    create_venue(client)
    zone = create_zone(client, "mall", shapely.box(0, 0, 20, 10), external_id="u1")
    hours = {"mon": [["09:00", "20:00"]], "sun": [["11:00", "17:00"]]}
    r = client.post("/v1/venues/mall/stores", json={"name": "Tideline", "category": "books",
                                                    "opening_hours": hours, "zone_id": zone["id"]})
    assert r.status_code == 201, r.text
    store = r.json()
    assert client.get(f"/v1/venues/mall/zones/{zone['id']}").json()["store"]["name"] == "Tideline"
    r = client.post("/v1/venues/mall/stores", json={"name": "Other", "zone_id": zone["id"]})
    assert r.status_code == 409 and "already linked" in r.json()["detail"]
    r = client.post("/v1/venues/mall/stores", json={"name": "Late", "opening_hours": {"mon": [["21:00", "09:00"]]}})
    assert r.status_code == 422 and "not after" in r.text
    assert client.delete(f"/v1/venues/mall/stores/{store['id']}").status_code == 204
    assert client.get(f"/v1/venues/mall/zones/{zone['id']}").json()["store"] is None


def test_level_with_zones_cannot_be_deleted(client: TestClient) -> None:
    create_venue(client)
    create_zone(client, "mall", shapely.box(0, 0, 20, 10))
    r = client.delete("/v1/venues/mall/levels/0")
    assert r.status_code == 409 and "still has 1 zone" in r.json()["detail"]


def test_unknown_venue_is_404_everywhere(client: TestClient) -> None:
    for method, path in [("get", "/v1/venues/nope"), ("get", "/v1/venues/nope/zones"),
                         ("get", "/v1/venues/nope/export"), ("delete", "/v1/venues/nope/zones/1")]:
        r = client.request(method.upper(), path)
        assert r.status_code == 404 and "nope" in r.json()["detail"], (method, path)


@pytest.mark.parametrize("change", [{"kind": "store"}, {"kind": "custom"}, {"presence": {"dwell_s": 30}}])
def test_changing_kind_or_presence_keeps_the_stored_geometry(client: TestClient, change: dict) -> None:
    # these re-check the stored geometry against the new margins; it used to come back as tuples and be
    # refused as "not an array" (the console's rename sends name and kind together)
    create_venue(client)
    zone = create_zone(client, "mall", shapely.box(0, 0, 20, 10))
    r = client.patch(f"/v1/venues/mall/zones/{zone['id']}", json={"name": "Renamed", **change})
    assert r.status_code == 200, r.text
    assert r.json()["geometry"] == zone["geometry"] and r.json()["name"] == "Renamed"
