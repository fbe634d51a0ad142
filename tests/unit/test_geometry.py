"""parse_zone_geometry: every bad input is refused with a message naming the problem."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Point, Polygon

from mallfence.spatial.geometry import (
    MAX_VERTICES,
    GeometryProblems,
    circle_polygon,
    parse_zone_geometry,
    to_geojson,
    zone_polygon,
)
from mallfence.spatial.projection import LocalProjection

LON, LAT = 13.4, 52.5
D = 0.0001  # ~7 m east, ~11 m north


def square(x: float = LON, y: float = LAT, d: float = D) -> list[list[float]]:
    return [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]


def many_vertices(n: int) -> list[list[float]]:
    """A closed ring of n positions (n - 1 distinct vertices) on a circle."""
    pts = [
        [LON + D * math.cos(2 * math.pi * i / (n - 1)), LAT + D * math.sin(2 * math.pi * i / (n - 1))]
        for i in range(n - 1)
    ]
    return [*pts, pts[0]]


BAD = [
    # bow-tie: the ring crosses itself
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, None,
     "self-intersection"),
    # first and last positions differ
    ({"type": "Polygon", "coordinates": [[*square()[:-1], [LON + D / 2, LAT]]]}, None, "not closed"),
    # a ring of 3 positions (a closed triangle needs 4)
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, None, "at least 4 positions"),
    # NaN coordinate (Python float)
    ({"type": "Polygon", "coordinates": [[[0, 0], [float("nan"), 0], [1, 1], [0, 0]]]}, None,
     "finite"),
    # infinite coordinate
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, float("inf")], [1, 1], [0, 0]]]}, None,
     "finite"),
    # longitude 200
    ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]}, None, "longitude 200"),
    # latitude -95
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, -95], [1, 1], [0, 0]]]}, None,
     "latitude -95"),
    # MAX_VERTICES + 1 distinct vertices (the closing position repeats the first and is not counted)
    ({"type": "Polygon", "coordinates": [many_vertices(MAX_VERTICES + 2)]}, None,
     f"limit of {MAX_VERTICES}"),
    # empty coordinates
    ({"type": "Polygon", "coordinates": []}, None, "non-empty array of linear rings"),
    # a polygon whose only ring is empty
    ({"type": "Polygon", "coordinates": [[]]}, None, "at least 4 positions, got 0"),
    # an empty MultiPolygon
    ({"type": "MultiPolygon", "coordinates": []}, None, "at least one polygon"),
    # missing coordinates
    ({"type": "Polygon"}, None, "non-empty array"),
    # unsupported type
    ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, None, "unsupported geometry type"),
    # not a GeoJSON object at all
    ([[0, 0], [1, 1]], None, "GeoJSON object"),
    # a Point zone without radius_m
    ({"type": "Point", "coordinates": [LON, LAT]}, None, "needs radius_m"),
    # negative radius
    ({"type": "Point", "coordinates": [LON, LAT]}, -5.0, "radius_m must be > 0"),
    # zero radius
    ({"type": "Point", "coordinates": [LON, LAT]}, 0.0, "radius_m must be > 0"),
    # radius beyond the 5 km limit
    ({"type": "Point", "coordinates": [LON, LAT]}, 6_000.0, "<= 5000"),
    # NaN radius
    ({"type": "Point", "coordinates": [LON, LAT]}, float("nan"), "radius_m must be > 0"),
    # bool as a coordinate (JSON true is not a number)
    ({"type": "Polygon", "coordinates": [[[0, 0], [True, 0], [1, 1], [0, 0]]]}, None,
     "numbers only"),
    # string as a coordinate
    ({"type": "Point", "coordinates": ["13.4", LAT]}, 10.0, "numbers only"),
    # a position with one number
    ({"type": "Point", "coordinates": [LON]}, 10.0, "[longitude, latitude]"),
    # nested one level too shallow: a ring given where the polygon's ring list belongs
    ({"type": "Polygon", "coordinates": square()}, None, "linear ring"),
    # nested one level too deep: a polygon given where a ring belongs
    ({"type": "Polygon", "coordinates": [[square()]]}, None, "nested one level too deep"),
    # MultiPolygon written with Polygon depth
    ({"type": "MultiPolygon", "coordinates": [square()]}, None, "linear ring"),
    # hole outside the shell
    ({"type": "Polygon", "coordinates": [square(), square(LON + 1, LAT)]}, None,
     "invalid geometry"),
    # overlapping MultiPolygon parts
    ({"type": "MultiPolygon", "coordinates": [[square()], [square(LON + D / 2)]]}, None,
     "invalid geometry"),
    # zero-area ring: all vertices on a line
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [2, 0], [0, 0]]]}, None,
     "invalid geometry"),
]


@pytest.mark.parametrize(("geometry", "radius", "needle"), BAD)
def test_bad_geometry_is_refused_with_a_useful_message(geometry, radius, needle):
    with pytest.raises(GeometryProblems) as exc:
        parse_zone_geometry(geometry, radius)
    assert exc.value.problems, "at least one Problem"
    assert needle.lower() in str(exc.value).lower()


def test_every_bad_position_is_reported_with_its_path():
    ring = [[0, 0], [float("nan"), 0], [1, 200], [0, 0]]
    with pytest.raises(GeometryProblems) as exc:
        parse_zone_geometry({"type": "Polygon", "coordinates": [ring]})
    paths = [p.path for p in exc.value.problems]
    assert paths == [("coordinates", 0, 1), ("coordinates", 0, 2)]
    assert "coordinates.0.1" in str(exc.value)


def test_point_reports_both_position_and_radius():
    with pytest.raises(GeometryProblems) as exc:
        parse_zone_geometry({"type": "Point", "coordinates": [500, 0]})
    assert {p.path for p in exc.value.problems} == {("coordinates",), ("radius_m",)}


def test_vertex_limit_counts_distinct_vertices():
    ok = parse_zone_geometry({"type": "Polygon", "coordinates": [many_vertices(MAX_VERTICES + 1)]})
    assert len(ok.exterior.coords) == MAX_VERTICES + 1  # 2,000 vertices plus the closing position


def test_polygon_with_hole():
    hole = [[LON + D / 4, LAT + D / 4], [LON + D / 4, LAT + D / 2], [LON + D / 2, LAT + D / 2],
            [LON + D / 2, LAT + D / 4], [LON + D / 4, LAT + D / 4]]
    g = parse_zone_geometry({"type": "Polygon", "coordinates": [square(), hole]})
    assert isinstance(g, Polygon) and len(g.interiors) == 1
    assert g.area == pytest.approx(D * D - (D / 4) ** 2)
    assert zone_polygon(g, None) is g


def test_multipolygon():
    g = parse_zone_geometry(
        {"type": "MultiPolygon", "coordinates": [[square()], [square(LON + 2 * D)]]}
    )
    assert isinstance(g, MultiPolygon) and len(g.geoms) == 2


def test_elevation_is_accepted_and_ignored():
    ring = [[*p, 12.5] for p in square()]
    g = parse_zone_geometry({"type": "Polygon", "coordinates": [ring]})
    assert not g.has_z


def test_point_with_radius_becomes_a_circle():
    g = parse_zone_geometry({"type": "Point", "coordinates": [LON, LAT]}, radius_m=25)
    assert isinstance(g, Point) and (g.x, g.y) == (LON, LAT)
    area = zone_polygon(g, 25)
    assert isinstance(area, Polygon) and area.contains(g)


def test_geojson_round_trip():
    src = {"type": "Polygon", "coordinates": [square()]}
    again = to_geojson(parse_zone_geometry(src))
    assert again["type"] == "Polygon"
    assert [list(p) for p in again["coordinates"][0]] == square()


@pytest.mark.parametrize(("lat", "radius"), [(0.0, 1.0), (52.5, 10.0), (52.5, 500.0), (-70.0, 5_000.0)])
def test_circle_polygon_radius_is_accurate(lat, radius):
    circle = circle_polygon(LON, lat, radius)
    loc = LocalProjection(LON, lat).geometry_to_local(circle)
    assert loc.area == pytest.approx(math.pi * radius**2, rel=0.01)
    assert loc.centroid.distance(Point(0, 0)) < 1e-6 * radius
    # vertices sit on the circle
    xs, ys = loc.exterior.xy
    r = [math.hypot(x, y) for x, y in zip(xs, ys, strict=True)]
    assert min(r) == pytest.approx(radius, rel=1e-9) and max(r) == pytest.approx(radius, rel=1e-9)


# -- properties: whatever arrives, the parser accepts a valid polygon or names what is wrong ---------------

_coordinate = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                        st.floats(min_value=LON - 0.01, max_value=LON + 0.01), st.text(max_size=3), st.none())
_position = st.lists(_coordinate, min_size=0, max_size=4)
_near = st.tuples(st.floats(LON - D, LON + D), st.floats(LAT - D, LAT + D)).map(list)
_ring = st.one_of(st.lists(_position, max_size=8), st.lists(_near, min_size=3, max_size=12),
                  st.lists(_near, min_size=3, max_size=12).map(lambda r: [*r, r[0]]))
_geometry = st.fixed_dictionaries({
    "type": st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "polygon", ""]),
    "coordinates": st.one_of(st.lists(_ring, max_size=3), st.lists(st.lists(_ring, max_size=2), max_size=3),
                             _position, st.none(), st.text(max_size=5)),
})


@given(_geometry)
def test_any_geometry_is_accepted_valid_or_refused_with_reasons(geometry: dict) -> None:
    try:
        geom = parse_zone_geometry(geometry)
    except GeometryProblems as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    assert geom.is_valid and not geom.is_empty
    assert isinstance(geom, Polygon | MultiPolygon | Point)


@given(st.lists(_near, min_size=3, max_size=10))
def test_an_accepted_ring_round_trips_through_geojson(ring: list[list[float]]) -> None:
    try:
        geom = parse_zone_geometry({"type": "Polygon", "coordinates": [[*ring, ring[0]]]})
    except GeometryProblems:
        return
    again = parse_zone_geometry(to_geojson(geom))
    assert again.equals_exact(geom, 1e-12)
