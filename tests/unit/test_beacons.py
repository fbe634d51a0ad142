"""Beacon positioning: key parsing, path loss, the RSSI smoother, floor vote and the range fit."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mallfence.spatial import beacon_filter
from mallfence.spatial.beacon_keys import eddystone_key, eddystone_power_1m, ibeacon_key, parse_beacon_key
from mallfence.spatial.beacons import (
    Beacon,
    BeaconMap,
    RssiSmoother,
    beacons_from_geojson,
    locate,
    rssi_to_distance,
)
from mallfence.spatial.projection import LocalProjection

UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
NS, INST = "edd1ebeac04e5defa017", "0bdb87539b67"
P1M, N = -59.0, 2.5


def key(i: int, major: int = 10) -> str:
    return ibeacon_key(UUID, major, i)


def grid(level: int = 0, major: int = 10, nx: int = 5, ny: int = 4, step: float = 10.0) -> list[Beacon]:
    """Beacons on a step-metre grid, like a store's ceiling layout."""
    return [Beacon(key(i, major), step * (i % nx), step * (i // nx), level, P1M) for i in range(nx * ny)]


def exact_rssi(b: Beacon, x: float, y: float, n: float = N) -> float:
    """The path-loss model without noise: what locate() inverts."""
    return b.power_1m - 10 * n * math.log10(max(math.hypot(x - b.x, y - b.y), 0.3))


def settle(scan, bmap: BeaconMap, times: int = 5, state: RssiSmoother | None = None):
    """Feed the same scan once a second until the windows are full; the last fix."""
    state = state or RssiSmoother()
    fix = None
    for t in range(times):
        fix = locate(scan, bmap, state, float(t))
    return fix


# --- keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "canonical"), [
    (f"ibeacon:{UUID}:10:1", f"ibeacon:{UUID}:10:1"),
    (f"IBEACON:{UUID.upper()}:10:1", f"ibeacon:{UUID}:10:1"),  # mixed case normalised
    (f" iBeacon:{UUID.replace('-', '')}:0010:01 ", f"ibeacon:{UUID}:10:1"),  # no dashes, leading zeros
    (f"ibeacon:{UUID}:0:65535", f"ibeacon:{UUID}:0:65535"),
    (f"Eddystone:{NS.upper()}:{INST.upper()}", f"eddystone:{NS}:{INST}"),
])
def test_parse_beacon_key_normalises(text: str, canonical: str) -> None:
    assert parse_beacon_key(text) == canonical
    assert parse_beacon_key(canonical) == canonical


@pytest.mark.parametrize("text", [
    f"ibeacon:{UUID[:-1]}:10:1",  # UUID one digit short
    f"ibeacon:{UUID[:-1]}g:10:1",  # not hex
    f"ibeacon:{UUID.replace('-', '', 1)}:10:1",  # dashes in the wrong places
    f"ibeacon:{UUID}:70000:1",  # major out of range
    f"ibeacon:{UUID}:1:65536",  # minor out of range
    f"ibeacon:{UUID}:-1:1",
    f"ibeacon:{UUID}:+1:1",
    f"ibeacon:{UUID}:1.5:1",
    f"ibeacon:{UUID}:\uff11:1",  # a full-width digit: isdigit() but not ASCII
    f"ibeacon:{UUID}:1",  # minor missing
    f"eddystone:{NS[:-2]}:{INST}",  # 9-byte namespace
    f"eddystone:{NS}:{INST}00",  # 7-byte instance
    f"eddystone:{NS[:-1]}z:{INST}",
    f"altbeacon:{UUID}:1:1",
    "",
    "ibeacon",
])
def test_parse_beacon_key_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_beacon_key(text)


@pytest.mark.parametrize(("uuid", "major", "minor"), [
    ("not-a-uuid", 1, 1), (UUID, 70000, 1), (UUID, 1, -1), (UUID, True, 1), (UUID, 1.0, 1), (None, 1, 1),
])
def test_ibeacon_key_rejects(uuid, major, minor) -> None:
    with pytest.raises(ValueError, match="iBeacon"):
        ibeacon_key(uuid, major, minor)


@pytest.mark.parametrize(("namespace", "instance"), [(NS[:18], INST), (NS, INST[:10]), (NS, "xyz"), (None, INST)])
def test_eddystone_key_rejects(namespace, instance) -> None:
    with pytest.raises(ValueError, match="Eddystone"):
        eddystone_key(namespace, instance)


@pytest.mark.parametrize(("tx_0m", "p_1m"), [(-18, -59.0), (-20, -61.0), (-24.5, -65.5), (0, -41.0), (20, -21.0)])
def test_eddystone_power_at_1m_is_41_db_below_0m(tx_0m: float, p_1m: float) -> None:
    assert eddystone_power_1m(tx_0m) == pytest.approx(p_1m)


@pytest.mark.parametrize("bad", [21, -101, math.nan, True, "-20"])
def test_eddystone_power_rejects(bad) -> None:
    with pytest.raises(ValueError):
        eddystone_power_1m(bad)


def test_beacon_and_map_validate() -> None:
    with pytest.raises(ValueError, match="canonical"):
        Beacon(key(1).upper(), 0, 0, 0)
    with pytest.raises(ValueError, match="duplicate"):
        BeaconMap([Beacon(key(1), 0, 0, 0), Beacon(key(1), 5, 0, 0)])
    bmap = BeaconMap([Beacon(key(1), 0, 0, 0)])
    assert bmap.find(key(1).upper()) == 0 and bmap.find("garbage") is None and bmap.find(key(2)) is None


# --- path loss ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("rssi", "p1m", "n", "metres"), [
    (-59, -59, 2.5, 1.0),
    (-84, -59, 2.5, 10.0),
    (-79, -59, 2.0, 10.0),  # free space
    (-89, -59, 3.0, 10.0),  # cluttered
    (-65, -59, 2.0, 10 ** 0.3),
    (-71, -65, 3.0, 10 ** 0.2),
    (-40, -59, 2.5, 0.3),  # 0.17 m: clamped up
    (-120, -59, 2.5, 40.0),  # 275 m: clamped down
])
def test_rssi_to_distance(rssi: float, p1m: float, n: float, metres: float) -> None:
    assert float(rssi_to_distance(rssi, p1m, n)) == pytest.approx(metres, rel=1e-9)


@pytest.mark.parametrize("n", [0.0, -2.0, math.nan])
def test_rssi_to_distance_rejects_exponent(n: float) -> None:
    with pytest.raises(ValueError):
        rssi_to_distance(-70, -59, n)


# --- smoother -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("readings", "expected"), [
    ([-70], -70.0),
    ([-70, -80], -75.0),
    ([-70, -80, -90], -80.0),  # below 4 readings: plain mean
    ([-60, -70, -80, -100], -75.0),  # min and max dropped
    ([-65, -70, -75, -100, -60], -70.0),
    ([-50, -65, -70, -75, -100, -60], -70.0),  # only the last 5 count: -50 fell out of the window
])
def test_smoother_trimmed_mean(readings: list[float], expected: float) -> None:
    s = RssiSmoother(window_s=10, max_readings=5)
    for t, v in enumerate(readings):
        s.add("k", v, t * 0.5)
    assert s.value("k", len(readings) * 0.5) == pytest.approx(expected)


def test_smoother_window_expiry_and_staleness() -> None:
    s = RssiSmoother(window_s=5.0, max_readings=5, stale_s=1.5)
    for t in range(3):
        s.add("k", -70.0, float(t))
    assert s.estimates(2.0) == (["k"], [-70.0], [3])
    assert s.value("k", 4.0) is None and len(s) == 1  # stale: not used, still remembered
    s.add("k", -80.0, 6.5)
    assert s.estimates(6.5) == (["k"], [-75.0], [2])  # t=0, 1 expired; t=2 still smooths the new reading
    assert s.value("k", 20.0) is None and len(s) == 0  # all expired: forgotten
    s.add("k", -70.0, 30.0)
    s.add("k", -60.0, 31.0)
    assert s.value("k", 30.5) == pytest.approx(-65.0)  # a scan slightly out of order keeps the newer reading
    assert s.value("k", 10.0) is None and len(s) == 0  # clock went back: readings "from the future" go


def test_smoother_clone_and_dict_roundtrip() -> None:
    s = RssiSmoother()
    for t in range(4):
        s.add(key(1), -70.0 - t, float(t))
        s.add(key(2), -80.0, float(t))
    c = s.clone()
    c.add(key(1), -50.0, 4.0)
    # the mean of the last 3 readings (the default window): -71, -72, -73
    assert s.estimates(3.0) != c.estimates(4.0) and s.value(key(1), 3.0) == pytest.approx(-72.0)
    d = json.loads(json.dumps(s.to_dict()))  # plain JSON for Redis
    assert RssiSmoother.from_dict(d).to_dict() == s.to_dict()
    with pytest.raises(ValueError, match="RssiSmoother"):
        RssiSmoother.from_dict({"window_s": 5})


# --- locate -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("x", "y"), [(13.0, 7.0), (20.0, 15.0), (4.0, 26.0), (36.5, 2.5), (10.2, 10.4)])
@pytest.mark.parametrize("level", [0, 1])
def test_locate_exact_rssi(x: float, y: float, level: int) -> None:
    beacons = grid(0, 10) + grid(1, 11)
    bmap = BeaconMap(beacons)
    # the other floor is heard 18 dB down through the slab, like the benchmark's model
    scan = [(b.key, exact_rssi(b, x, y) - (18.0 if b.level != level else 0.0)) for b in beacons]
    fix = settle([s for s in scan if s[1] >= -95], bmap)
    assert fix is not None and fix.level == level and fix.method == "lsq"
    assert math.hypot(fix.x - x, fix.y - y) < 0.5
    assert 1.0 <= fix.accuracy_m <= 3.0 and fix.unknown_beacons == 0


def test_floor_vote_one_loud_beacon_through_the_floor() -> None:
    here = [Beacon(key(i), x, 0.0, 0, P1M) for i, x in enumerate((0.0, 8.0, 16.0))]
    above = Beacon(key(9, 11), 8.0, 2.0, 1, P1M)
    bmap = BeaconMap([*here, above])
    scan = [(here[0].key, -75.0), (here[1].key, -78.0), (here[2].key, -80.0), (above.key, -62.0)]
    fix = settle(scan, bmap)
    assert fix is not None and fix.level == 0 and fix.beacons_used == 3
    # ... but three loud beacons above and one faint one here is the floor above
    scan = [(here[0].key, -90.0), *((b.key, -65.0) for b in BeaconMap(grid(1, 11, 3, 1)).beacons)]
    fix = settle(scan, BeaconMap([*here, *grid(1, 11, 3, 1)]))
    assert fix is not None and fix.level == 1


def test_unknown_beacons_are_counted_not_errors() -> None:
    beacons = grid()
    scan = [(b.key, exact_rssi(b, 12.0, 8.0)) for b in beacons]
    scan += [(key(99, 7), -60.0), ("not a key", -60.0), (f"eddystone:{NS}:{INST}", -61.0)]
    fix = settle(scan, BeaconMap(beacons))
    assert fix is not None and fix.unknown_beacons == 3 and math.hypot(fix.x - 12, fix.y - 8) < 0.5
    assert locate([("nope", -60.0)], BeaconMap(beacons), RssiSmoother(), 0.0) is None


def test_bad_readings_are_ignored() -> None:
    beacons = grid()
    scan = [(b.key, exact_rssi(b, 12.0, 8.0)) for b in beacons]
    noisy = scan + [(beacons[0].key, v) for v in (math.nan, math.inf, 0, 5.0, -200.0, True, "x")]
    a, b = settle(scan, BeaconMap(beacons)), settle(noisy, BeaconMap(beacons))
    assert a is not None and b is not None and (a.x, a.y) == pytest.approx((b.x, b.y))


def test_power_override_replaces_the_map_calibration() -> None:
    beacons = grid()
    x, y = 12.0, 8.0
    # these beacons really transmit 6 dB hotter than the map says and advertise it
    scan = [(b.key, exact_rssi(b, x, y) + 6.0, b.power_1m + 6.0) for b in beacons]
    fix = settle(scan, BeaconMap(beacons))
    assert fix is not None and math.hypot(fix.x - x, fix.y - y) < 0.5


def test_fewer_than_three_beacons_fall_back_to_the_centroid() -> None:
    beacons = grid()
    x, y = 14.0, 6.0
    near = sorted(beacons, key=lambda b: math.hypot(b.x - x, b.y - y))
    full = settle([(b.key, exact_rssi(b, x, y)) for b in near[:6]], BeaconMap(beacons))
    two = settle([(b.key, exact_rssi(b, x, y)) for b in near[:2]], BeaconMap(beacons))
    assert full is not None and two is not None
    assert two.method == "centroid" and two.beacons_used == 2 and full.method == "lsq"
    assert two.accuracy_m > full.accuracy_m
    assert math.hypot(two.x - x, two.y - y) <= two.accuracy_m  # honest, if vague


def test_nothing_heard_is_no_fix() -> None:
    assert locate([], BeaconMap(grid()), RssiSmoother(), 0.0) is None


# --- properties ---------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    st.tuples(st.floats(0.0, 40.0), st.floats(0.0, 40.0)),
    st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3),
    st.lists(st.floats(0.0, 2 * math.pi), max_size=5),
    st.lists(st.floats(1.0, 39.0), min_size=8, max_size=8),
)
def test_exact_ranges_are_fitted(at, jitter: list[float], extra: list[float], dists: list[float]) -> None:
    """Exact ranges from >= 3 non-collinear beacons: the fit finds the point.

    Beacons 1..39 m from the point (the model clamps ranges to 0.3..40 m), three of them at bearings
    120 deg +- 0.5 rad apart, so the point is inside their triangle: never collinear, one solution.
    Tolerance 1 cm: the solver stops on a step under 10 cm once its prior no longer bends the fit
    (real fixes are good to metres), and the last Gauss-Newton step on zero residuals lands within
    millimetres (worst seen: 6 mm in 13,500 random layouts).
    """
    x, y = at
    bearings = [k * 2 * math.pi / 3 + j for k, j in enumerate(jitter)] + extra
    beacons = [Beacon(key(i), x + d * math.cos(a), y + d * math.sin(a), 0, P1M)
               for i, (a, d) in enumerate(zip(bearings, dists, strict=False))]
    fix = settle([(b.key, exact_rssi(b, x, y)) for b in beacons], BeaconMap(beacons), times=3)
    assert fix is not None and fix.method == "lsq" and fix.beacons_used == len(beacons)
    assert math.hypot(fix.x - x, fix.y - y) < 0.01


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-120.0, 0.0), st.integers(0, 19)), min_size=1, max_size=12),
    st.lists(st.floats(-120.0, 0.0), max_size=3),
)
def test_locate_is_always_finite(readings: list[tuple[float, int]], loud_above: list[float]) -> None:
    beacons = grid(0, 10) + grid(1, 11, 2, 2)
    bmap = BeaconMap(beacons)
    scan = [(beacons[i].key, rssi) for rssi, i in readings]
    scan += [(b.key, r) for b, r in zip(beacons[20:], loud_above, strict=False)]
    state = RssiSmoother()
    for t in range(3):
        fix = locate(scan, bmap, state, float(t))
        if fix is not None:
            assert all(math.isfinite(v) for v in (fix.x, fix.y, fix.accuracy_m))
            assert 1.0 <= fix.accuracy_m <= 30.0 and fix.level in (0, 1)
            # never further from the floor's beacons than a range can say (40 m)
            assert min(math.hypot(fix.x - b.x, fix.y - b.y) for b in beacons if b.level == fix.level) <= 40.0


def test_sample_layout_loads() -> None:
    """zones/harbourside-beacons.geojson (from zones/beacons.py) builds a map on all three levels."""
    zones = Path(__file__).resolve().parents[2] / "zones"
    data = json.loads((zones / "harbourside-beacons.geojson").read_text(encoding="utf-8"))
    bmap = BeaconMap(beacons_from_geojson(data, LocalProjection(*data["venue"]["anchor"])))
    assert len(bmap) > 300 and bmap.levels == (-1, 0, 1)
    assert all(-65.0 <= p <= -59.0 for p in bmap.power_1m)
    qr = json.loads((zones / "harbourside-qr.json").read_text(encoding="utf-8"))
    assert len(qr["codes"]) == 6


# --- motion track ---------------------------------------------------------------------------------
BIG = BeaconMap(grid(nx=12, ny=12))  # 110 x 110 m at 10 m: room for a 30 s walk from the middle


def heard(bmap: BeaconMap, x: float, y: float, rng: random.Random | None = None, sigma: float = 0.0):
    """A scan at (x, y): exact ranges, or with ``sigma`` dB of shadowing; below -95 dBm unheard."""
    scan = []
    for b in bmap.beacons:
        rssi = exact_rssi(b, x, y) + (rng.gauss(0.0, sigma) if rng else 0.0)
        if rssi >= -95.0:
            scan.append((b.key, round(rssi)) if rng else (b.key, rssi))
    return scan


def untracked(state: RssiSmoother) -> RssiSmoother:
    """The same readings without a track: its next fix is this scan's fit alone."""
    return RssiSmoother.from_dict({**state.to_dict(), "track": None})


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 2 * math.pi), st.floats(50.0, 60.0), st.floats(50.0, 60.0))
def test_a_straight_walk_is_not_lagged_far(heading: float, x0: float, y0: float) -> None:
    """Exact ranges, 1.3 m/s: the readings' window alone trails the walker by ~3.9 m (3 s of walk).
    The track makes up for most of it as it learns the walk: never more than 2.5 m behind, within
    1.2 m after 15 s, and never more than 1.5 m off the line (worst seen in 400 walks: 2.3, 0.85, 1.0 m)."""
    state, speed = RssiSmoother(), 1.3
    ux, uy = math.cos(heading), math.sin(heading)
    for t in range(30):  # 39 m: at least 10 m inside the beacons
        x, y = x0 + speed * t * ux, y0 + speed * t * uy
        fix = locate(heard(BIG, x, y), BIG, state, float(t))
        assert fix is not None
        behind, aside = (x - fix.x) * ux + (y - fix.y) * uy, abs((fix.x - x) * uy - (fix.y - y) * ux)
        assert behind <= (2.5 if t < 15 else 1.2) and aside <= 1.5, (t, behind, aside)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 2 * math.pi), st.floats(15.0, 95.0), st.floats(15.0, 95.0))
def test_a_standing_device_converges_to_the_exact_position(heading: float, x: float, y: float) -> None:
    """Walked in at 1.3 m/s, then standing with exact ranges: the walk's momentum carries the track
    past the stop (~2 m at most), then it settles on the point (worst seen after 40 s: under 1 cm)."""
    state = RssiSmoother()
    for t in range(10):
        back = 1.3 * (10 - t)
        locate(heard(BIG, x - back * math.cos(heading), y - back * math.sin(heading)), BIG, state, float(t))
    for t in range(10, 50):
        fix = locate(heard(BIG, x, y), BIG, state, float(t))
    assert fix is not None and math.hypot(fix.x - x, fix.y - y) < 0.05
    assert 1.0 <= fix.accuracy_m <= 3.0


@pytest.mark.parametrize(("case", "speed", "median_at_most", "p90_at_most"), [
    # measured 0.96, 0.97: what a standing device's fixes keep is mostly bias (far beacons are heard only
    # when the shadowing is kind), which no averaging removes; the track must not make it worse
    ("standing", 0.0, 1.0, 1.0),
    # measured 0.63, 0.70: the fit alone trails a walker by the readings' age (2-3 s), the track does not
    ("walking", 1.3, 0.75, 0.8),
])
def test_the_track_beats_the_fit_alone_in_noise(case: str, speed: float, median_at_most: float,
                                                p90_at_most: float) -> None:
    """5 dB of shadowing, ten seeded minutes: error with the track / without it (the locator before)."""
    errors: dict[str, list[float]] = {"tracked": [], "before": []}
    for seed in range(10):
        rng = random.Random(seed)
        tracked, before = RssiSmoother(), RssiSmoother(max_readings=5, motion_filter=False)
        for t in range(60):
            x, y = 30.0 + speed * t, 55.0
            scan = heard(BIG, x, y, rng, sigma=5.0)
            for name, state in (("tracked", tracked), ("before", before)):
                fix = locate(scan, BIG, state, float(t))
                assert fix is not None
                errors[name].append(math.hypot(fix.x - x, fix.y - y))
    ours, old = sorted(errors["tracked"]), sorted(errors["before"])
    n = len(ours)
    assert ours[n // 2] / old[n // 2] <= median_at_most and ours[9 * n // 10] / old[9 * n // 10] <= p90_at_most, case


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 25), st.floats(0.2, 10.0))
def test_the_track_survives_dict_and_clone(seed: int, steps: int, gap: float) -> None:
    """Through JSON (Redis) or a clone, the state gives exactly the same next fix as the original."""
    rng = random.Random(seed)
    state, t = RssiSmoother(), 0.0
    for k in range(steps):
        locate(heard(BIG, 40.0 + 1.2 * k, 50.0, rng, 5.0), BIG, state, t)
        t += rng.choice((0.2, 1.0, 1.0, 1.0, 3.0))
    scan = heard(BIG, 40.0 + 1.2 * steps, 51.0, rng, 5.0)
    copies = [RssiSmoother.from_dict(json.loads(json.dumps(state.to_dict()))), state.clone()]
    assert copies[0].to_dict() == state.to_dict() and state.to_dict()["track"] is not None
    expected = locate(scan, BIG, state, t + gap)
    assert all(locate(scan, BIG, c, t + gap) == expected for c in copies)


OLD = {"window_s": 5.0, "max_readings": 5, "stale_s": 1.5, "readings": {key(i): [[9.0, -70.0], [10.0, -72.0]]
                                                                         for i in (13, 14, 24, 25)}}


@pytest.mark.parametrize(("extra", "why"), [
    ({}, "a dict from before the track"),
    ({"track": None}, "no fix yet"),
    ({"track": [1.0] * 15}, "too short"),
    ({"track": [1.0] * 17}, "too long"),
    ({"track": [10.0, 0, 5, 5, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, math.nan]}, "NaN"),
    ({"track": [10.0, 0, 5, 5, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, math.inf]}, "inf"),
    ({"track": [10.0, 0, 5, 5, 0, 0, -1, 0, 1, 0, 0, 0, 0, 1, 0, 1]}, "negative variance"),
    ({"track": [10.0, 0, 5, 5, 0, 0, 1, 2, 1, 0, 0, 0, 0, 1, 0, 1]}, "covariance not positive definite"),
    ({"track": [10.0, 0, 5, 5, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, "1"]}, "a string"),
    ({"track": [10.0, 0, 5, 5, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, True]}, "a bool"),
    ({"track": [10.0, 0, 5, 5, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 10**400]}, "an integer beyond float"),
    ({"track": {"x": 1}}, "not a list"),
    ({"track": "1,2,3"}, "a string"),
])
def test_old_or_damaged_dicts_load_without_a_track(extra: dict, why: str) -> None:
    state = RssiSmoother.from_dict({**OLD, **extra})
    assert state.motion_filter and state.to_dict()["track"] is None and state.max_readings == 5, why
    # the first fix starts a track where this scan's fit is
    bmap = BeaconMap(grid())
    fix, alone = locate([], bmap, state, 11.0), locate([], bmap, untracked(state), 11.0)
    assert fix is not None and state.to_dict()["track"] is not None
    assert (fix.x, fix.y) == pytest.approx((alone.x, alone.y), abs=1e-9)


@pytest.mark.parametrize(("change", "restarts"), [
    ({"dt": 1.0}, False),
    ({"dt": 0.2}, False),
    ({"dt": 10.0}, False),  # an app in the background: the prediction still helps (bench --scan-s 10)
    ({"dt": beacon_filter.RESET_S + 0.5}, True),  # too long: the track is forgotten
    ({"dt": -0.5}, False),  # a scan a little out of order is folded in
    ({"dt": -1.5}, True),  # the clock went back
    ({"dt": 1.0, "level": 1}, True),  # up the escalator: other beacons, a new track
])
def test_when_the_track_restarts(change: dict, restarts: bool) -> None:
    beacons = grid(0, 10, 8, 6) + grid(1, 11, 8, 6)
    bmap = BeaconMap(beacons)
    state, rng = RssiSmoother(), random.Random(1)

    def scan(x: float, y: float, level: int):
        return [(b.key, round(exact_rssi(b, x, y) - (18.0 if b.level != level else 0.0) + rng.gauss(0, 4)))
                for b in beacons if exact_rssi(b, x, y) - (18.0 if b.level != level else 0.0) >= -95]

    for t in range(12):
        locate(scan(20.0 + 1.3 * t, 25.0, 0), bmap, state, float(t))
    now, after = 11.0 + change["dt"], scan(36.0, 26.0, change.get("level", 0))
    fix, alone = locate(after, bmap, state.clone(), now), locate(after, bmap, untracked(state), now)
    assert fix is not None and alone is not None and fix.level == alone.level == change.get("level", 0)
    assert ((fix.x, fix.y) == (alone.x, alone.y)) is restarts


def test_without_the_motion_filter_the_fix_is_the_fit() -> None:
    bmap, rng = BeaconMap(grid()), random.Random(3)
    plain, tracked = RssiSmoother(motion_filter=False), RssiSmoother()
    for t in range(8):
        scan = heard(bmap, 12.0 + t, 8.0, rng, 5.0)
        fix = locate(scan, bmap, plain, float(t))
        alone = locate(scan, bmap, untracked(tracked), float(t))
        locate(scan, bmap, tracked, float(t))
        # the same point; accuracy_m is the fit's own formula here, the new track's there
        assert (fix.x, fix.y, fix.level, fix.beacons_used, fix.method) == (alone.x, alone.y, alone.level,
                                                                          alone.beacons_used, alone.method)
    assert plain.to_dict()["track"] is None and plain.to_dict()["motion_filter"] is False
    assert not RssiSmoother.from_dict(json.loads(json.dumps(plain.to_dict()))).motion_filter
    assert not plain.clone().motion_filter


@pytest.mark.parametrize(("miss_m", "moves_at_most"), [
    (0.0, 0.0),  # a fit where the track expected it changes nothing
    (3.0, 2.0),  # a plausible miss moves the track part of the way
    (30.0, 4.0),  # a wild one (a mirror solution, a fade) far less than a Kalman filter would (~17 m)
    (300.0, 4.0),
])
def test_a_fit_far_from_the_track_moves_it_less(miss_m: float, moves_at_most: float) -> None:
    track = beacon_filter.start(0.0, 0, 10.0, 10.0, 4.0, 0.0, 4.0)
    track = beacon_filter.step(track, 1.0, 0, 10.0, 10.0, 4.0, 0.0, 4.0, 0.0)  # standing, settled a little
    moved = beacon_filter.step(track, 2.0, 0, 10.0 + miss_m, 10.0, 4.0, 0.0, 4.0, 0.0)
    shift = math.hypot(moved[2] - track[2], moved[3] - track[3])
    assert shift <= moves_at_most + 1e-9 and (shift > 0) is (miss_m > 0)
    assert beacon_filter.valid(moved)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-2.0, 40.0), st.integers(0, 1),
                          st.lists(st.tuples(st.floats(-120.0, 0.0), st.integers(0, 39)), max_size=12)),
                min_size=1, max_size=12))
def test_the_track_is_always_finite(steps: list[tuple[float, int, list[tuple[float, int]]]]) -> None:
    """Any gaps (0..40 s, the clock going back), floors and readings: finite fixes, JSON-clean state."""
    beacons = grid(0, 10) + grid(1, 11)
    bmap, state, now = BeaconMap(beacons), RssiSmoother(), 1000.0
    for dt, _, readings in steps:
        now += dt
        fix = locate([(beacons[i].key, rssi) for rssi, i in readings], bmap, state, now)
        if fix is not None:
            assert all(math.isfinite(v) for v in (fix.x, fix.y, fix.accuracy_m)) and 1.0 <= fix.accuracy_m <= 30.0
        json.dumps(state.to_dict(), allow_nan=False)
