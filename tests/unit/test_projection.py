"""LocalProjection: exact inverse, right scale, geometries survive the round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon

from mallfence.spatial.projection import LocalProjection

anchors = st.tuples(
    st.floats(-179.0, 179.0, allow_nan=False), st.floats(-80.0, 80.0, allow_nan=False)
)
metres = st.floats(-5_000.0, 5_000.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(anchors, st.lists(st.tuples(metres, metres), min_size=1, max_size=50))
def test_local_to_wgs84_and_back_is_identity(anchor, xy):
    proj = LocalProjection(*anchor)
    x, y = np.array(xy).T
    lon, lat = proj.to_wgs84(x, y)
    x2, y2 = proj.to_local(lon, lat)
    # degrees carry ~1e-14 relative precision: that is ~1e-9 m at the equator
    np.testing.assert_allclose(x2, x, rtol=0, atol=1e-6)
    np.testing.assert_allclose(y2, y, rtol=0, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(anchors, st.floats(-0.05, 0.05), st.floats(-0.05, 0.05))
def test_wgs84_to_local_and_back_is_identity(anchor, dlon, dlat):
    proj = LocalProjection(*anchor)
    lon, lat = np.array([anchor[0] + dlon]), np.array([anchor[1] + dlat])
    lon2, lat2 = proj.to_wgs84(*proj.to_local(lon, lat))
    np.testing.assert_allclose(lon2, lon, rtol=0, atol=1e-11)
    np.testing.assert_allclose(lat2, lat, rtol=0, atol=1e-11)


def test_anchor_is_origin():
    proj = LocalProjection(2.2945, 48.8584)
    x, y = proj.to_local(np.array([2.2945]), np.array([48.8584]))
    assert x[0] == 0.0 and y[0] == 0.0
    assert proj.distance_m(2.2945, 48.8584) == 0.0


def _meridian_degree_m(lat: float) -> float:
    """Length of one degree of latitude (standard series for WGS84), metres."""
    phi = math.radians(lat)
    return 111_132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)


def _parallel_degree_m(lat: float) -> float:
    phi = math.radians(lat)
    return 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)


@pytest.mark.parametrize("lat", [0.0, 30.0, 52.0, 60.0, -33.9])
def test_known_distances(lat):
    proj = LocalProjection(10.0, lat)
    # 0.001 deg of latitude: 111.27 m at 52 N (the brief's "about 111.2 m")
    north = proj.distance_m(10.0, lat + 0.001)
    assert north == pytest.approx(_meridian_degree_m(lat) / 1000, rel=1e-3)
    east = proj.distance_m(10.001, lat)
    assert east == pytest.approx(_parallel_degree_m(lat) / 1000, rel=1e-3)


def test_known_distance_at_52n_is_111_2_m():
    d = LocalProjection(13.4, 52.0).distance_m(13.4, 52.001)
    assert d == pytest.approx(111.2, rel=1e-3)


def test_diagonal_distance_is_euclidean_in_local_metres():
    proj = LocalProjection(-0.1276, 51.5072)
    lon, lat = proj.to_wgs84(np.array([300.0]), np.array([400.0]))
    assert proj.distance_m(float(lon[0]), float(lat[0])) == pytest.approx(500.0, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(anchors, st.integers(3, 40), st.floats(1.0, 500.0), st.floats(-2_000.0, 2_000.0))
def test_geometry_round_trip(anchor, n, radius, offset):
    proj = LocalProjection(*anchor)
    ring = Point(offset, -offset).buffer(radius, quad_segs=max(1, n // 4))
    hole = Point(offset, -offset).buffer(radius / 3, quad_segs=2)
    geom = Polygon(ring.exterior.coords, [hole.exterior.coords])
    back = proj.geometry_to_local(proj.geometry_to_wgs84(geom))
    assert back.geom_type == "Polygon" and len(back.interiors) == 1
    assert shapely.equals_exact(back, geom, tolerance=1e-6)
    # a round trip through degrees keeps ~1e-7 m per coordinate (float64 at lon 180), so area to 1e-6
    assert back.area == pytest.approx(geom.area, rel=1e-6)


def test_geometry_to_wgs84_matches_point_transform():
    proj = LocalProjection(151.2093, -33.8688)
    geom = Polygon([(0, 0), (25, 0), (25, 10), (0, 10)])
    c = shapely.get_coordinates(proj.geometry_to_wgs84(geom))
    lon, lat = proj.to_wgs84(np.array([0.0, 25.0, 25.0, 0.0, 0.0]), np.array([0.0, 0, 10, 10, 0]))
    np.testing.assert_array_equal(c[:, 0], lon)
    np.testing.assert_array_equal(c[:, 1], lat)
