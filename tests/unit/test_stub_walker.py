"""The mobile_stub walk planner and noise model on small synthetic venues."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from mallfence.spatial.projection import LocalProjection
from mobile_stub.noise import add_noise
from mobile_stub.venue import Venue, venue_from_export
from mobile_stub.walker import Sample, plan_walk

ANCHOR = (4.89, 52.37)
SEEDS = range(25)
WALKABLE = {"corridor", "entrance", "food_court", "pickup"}


def _export(zones: list[tuple[str, str, int | None, BaseGeometry, dict[str, Any]]]) -> dict[str, Any]:
    """A venue export (lon/lat GeoJSON) from zones drawn in local metres around ANCHOR."""
    proj = LocalProjection(*ANCHOR)
    features = []
    for i, (name, kind, level, geom, extra) in enumerate(zones, start=1):
        features.append({
            "type": "Feature",
            "geometry": mapping(proj.geometry_to_wgs84(geom)),
            "properties": {
                "id": i, "external_id": name.lower().replace(" ", "-"), "name": name, "kind": kind,
                "level": level, "tags": extra.get("tags", []), "metadata": extra.get("metadata", {}),
                "active": True,
            },
        })
    return {
        "type": "FeatureCollection",
        "venue": {"slug": "mini", "name": "Mini Mall", "timezone": "Europe/Amsterdam", "anchor": list(ANCHOR)},
        "levels": [{"ordinal": 0, "name": "Ground", "short_name": "G"},
                   {"ordinal": 1, "name": "First", "short_name": "L1"}],
        "features": features,
    }


def _mini_mall() -> Venue:
    """Two levels joined by two escalators; four stores on the ground floor, two upstairs."""
    esc = {"tags": ["escalator"], "metadata": {"connects": [0, 1]}}
    zones: list[tuple[str, str, int | None, BaseGeometry, dict[str, Any]]] = [
        ("Mini Mall", "venue", None, box(-4, 0, 60, 28), {}),
        ("West door", "entrance", 0, box(-4, 10, 0, 16), {}),
    ]
    for level in (0, 1):
        zones += [
            (f"Mall {level}", "corridor", level, box(0, 10, 60, 16), {}),
            (f"Up {level}", "custom", level, box(40, 16, 52, 19), esc),
            (f"Down {level}", "custom", level, box(40, 19, 52, 22), esc),
            (f"North A{level}", "store", level, box(5, 16, 20, 28), {}),
            (f"South A{level}", "store", level, box(5, 0, 20, 10), {}),
        ]
    zones += [
        ("North B0", "store", 0, box(20, 16, 35, 28), {}),
        ("South B0", "store", 0, box(20, 0, 35, 10), {}),
    ]
    return venue_from_export(_export(zones))


def _megastore() -> Venue:
    """One level without corridors: a big store split into departments."""
    zones: list[tuple[str, str, int | None, BaseGeometry, dict[str, Any]]] = [
        ("Door", "entrance", 0, box(18, -3, 22, 0), {}),
        ("Store", "store", 0, box(0, 0, 40, 30), {}),
        ("Shoes", "department", 0, box(0, 0, 20, 15), {}),
        ("Toys", "department", 0, box(20, 0, 40, 15), {}),
        ("Books", "department", 0, box(0, 15, 20, 30), {}),
        ("Garden", "department", 0, box(20, 15, 40, 30), {}),
    ]
    return venue_from_export(_export(zones))


@pytest.fixture(scope="module")
def mall() -> Venue:
    return _mini_mall()


@pytest.fixture(scope="module")
def walks(mall: Venue) -> dict[int, list[Sample]]:
    return {seed: plan_walk(mall, random.Random(seed)) for seed in SEEDS}


def _zone(venue: Venue, label: str):
    return next(z for z in venue.zones if z.label == label)


def _labels(walk: list[Sample], prefix: str) -> set[str]:
    return {s.zone_hint.split(":", 1)[1] for s in walk if s.zone_hint and s.zone_hint.startswith(prefix)}


def _inside(geom: BaseGeometry, samples: list[Sample]) -> np.ndarray:
    return shapely.intersects_xy(geom, [s.x for s in samples], [s.y for s in samples])


def test_path_stays_in_walkable_area_and_visited_zones(mall: Venue, walks: dict[int, list[Sample]]) -> None:
    for seed, walk in walks.items():
        visited = _labels(walk, "store:")
        for level in (0, 1):
            allowed = unary_union([
                z.geom for z in mall.zones_on(level)
                if z.kind in WALKABLE or "escalator" in z.tags or z.label in visited
            ]).buffer(0.5)
            mine = [s for s in walk if s.floor == level and s.zone_hint != "outside"]
            stray = [s for s, ok in zip(mine, _inside(allowed, mine), strict=True) if not ok]
            assert not stray, f"seed {seed}: {stray[:3]}"


def test_outside_only_at_the_ends_next_to_the_door(mall: Venue, walks: dict[int, list[Sample]]) -> None:
    door = _zone(mall, "west-door").geom.buffer(0.5)
    for seed, walk in walks.items():
        flags = [s.zone_hint == "outside" for s in walk]
        inner = [i for i, f in enumerate(flags) if not f]
        assert flags[0] and flags[-1], f"seed {seed}: walks in from and out to the street"
        assert inner == list(range(inner[0], inner[-1] + 1)), f"seed {seed}: outside mid-walk"
        assert _inside(door, [walk[inner[0]], walk[inner[-1]]]).all(), f"seed {seed}"
        venue_shell = _zone(mall, "mini-mall").geom
        assert not _inside(venue_shell.buffer(25), [walk[0], walk[-1]]).any(), f"seed {seed}"


def test_visits_two_to_five_stores_and_enters_each(mall: Venue, walks: dict[int, list[Sample]]) -> None:
    for seed, walk in walks.items():
        stores = _labels(walk, "store:")
        assert 2 <= len(stores) <= 5, f"seed {seed}: {stores}"
        for label in stores:
            z = _zone(mall, label)
            here = [s for s in walk if s.floor == z.level]
            dwell = sum(_inside(z.geom, here))
            assert dwell >= 60, f"seed {seed}: only {dwell} s inside {label}"


def test_floor_changes_only_on_escalators(mall: Venue, walks: dict[int, list[Sample]]) -> None:
    escalators = {
        level: unary_union([z.geom for z in mall.zones_on(level) if "escalator" in z.tags]).buffer(0.01)
        for level in (0, 1)
    }
    changes = 0
    for seed, walk in walks.items():
        for a, b in itertools.pairwise(walk):
            if a.floor != b.floor:
                changes += 1
                assert _inside(escalators[a.floor], [a]).all(), f"seed {seed}: {a}"
                assert _inside(escalators[b.floor], [b]).all(), f"seed {seed}: {b}"
    assert changes >= 2, "some shoppers go upstairs and come back"


def test_speed_never_exceeds_2_m_per_s(walks: dict[int, list[Sample]]) -> None:
    for seed, walk in walks.items():
        t = np.array([s.t_offset_s for s in walk])
        xy = np.array([(s.x, s.y) for s in walk])
        speed = np.hypot(*np.diff(xy, axis=0).T) / np.diff(t)
        assert speed.max() <= 2.0, f"seed {seed}: {speed.max():.2f} m/s"
        assert np.allclose(np.diff(t), 1.0), "one sample per simulated second"


def test_deterministic_for_a_seed(mall: Venue, walks: dict[int, list[Sample]]) -> None:
    assert plan_walk(mall, random.Random(3)) == walks[3]
    assert plan_walk(_mini_mall(), random.Random(3)) == walks[3], "no state leaks between venues"
    assert walks[3] != walks[4]


def test_sample_interval_is_configurable(mall: Venue) -> None:
    walk = plan_walk(mall, random.Random(5), sample_interval_s=2.5)
    assert np.allclose(np.diff([s.t_offset_s for s in walk]), 2.5)


def test_level_without_corridors_walks_the_whole_store() -> None:
    venue = _megastore()
    floor = unary_union([z.geom for z in venue.zones]).buffer(0.5)
    for seed in range(10):
        walk = plan_walk(venue, random.Random(seed))
        inner = [s for s in walk if s.zone_hint != "outside"]
        assert _inside(floor, inner).all(), f"seed {seed}"
        assert len(_labels(walk, "department:") | _labels(walk, "store:")) >= 2


def test_noise_is_deterministic_and_plausible(walks: dict[int, list[Sample]]) -> None:
    walk = [s for w in walks.values() for s in w][:20_000]
    walk = [Sample(float(i), s.x, s.y, s.floor, s.zone_hint) for i, s in enumerate(walk)]
    fixes = add_noise(walk, seed=11, levels=[0, 1])
    assert fixes == add_noise(walk, seed=11, levels=[0, 1])
    err = np.array([math.hypot(f.x - f.true_x, f.y - f.true_y) for f in fixes])
    acc = np.array([f.accuracy_m for f in fixes])
    assert 2.5 < np.median(err) < 5.0, "sigma about 3 m per axis"
    assert 0.005 < np.mean(err > 15) < 0.02, "about 1 % outliers"
    assert acc.min() >= 2.0 and 0 < np.sum(acc > 25) < 0.01 * len(acc)
    assert np.corrcoef(err, acc)[0, 1] > 0.5, "accuracy tracks the error"
    nulls = sum(f.floor is None for f in fixes) / len(fixes)
    assert 0.01 < nulls < 0.03
    wrong = sum(f.floor is not None and f.floor != s.floor for f, s in zip(fixes, walk, strict=True))
    assert wrong < 0.01 * len(fixes)
