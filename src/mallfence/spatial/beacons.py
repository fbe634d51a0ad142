"""Indoor positioning from Bluetooth beacon scans: RSSI smoothing, floor vote, range fit.

Beacon identities (iBeacon, Eddystone-UID keys) live in ``beacon_keys``.

Pure and synchronous like the rest of ``spatial``: the caller owns the per-device ``RssiSmoother``
(small, clonable, a plain dict away from Redis; it also carries the device's motion track) and the
venue's ``BeaconMap`` (built once). ``locate``: readings are smoothed per beacon (the mean of a short
window: one BLE reading carries ~5 dB of shadowing, ±60 % in range); the floor is a vote of the
strongest beacons (one loud beacon through a slab must not outvote the beacons around you); a
weighted least-squares fit of log ranges to that floor's beacons measures where the device was
while those readings were taken; a Kalman filter over those fits (``beacon_filter``) makes the
position, and ``accuracy_m`` from its covariance, calibrated on bench/beacons.py (~70 % of fixes
lie within it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mallfence.spatial import beacon_filter
from mallfence.spatial.beacon_keys import parse_beacon_key

MIN_RANGE_M, MAX_RANGE_M = 0.3, 40.0  # beyond 40 m indoor RSSI says "far", not how far
NOISE_FLOOR_DBM = -100.0  # a beacon's floor-vote weight is its margin above this
MIN_ACCURACY_M, MAX_ACCURACY_M = 1.0, 30.0
# Range noise (dB on a smoothed reading): shadowing averages down with the readings in the window,
# model error (calibration, path-loss exponent, walls) does not. Without the motion filter,
# accuracy_m = sqrt((SCALE * fit sigma)^2 + FLOOR^2); the floor is error the fit cannot see (the
# window lags a walking shopper by 1-2 m). Calibrated on the bench: 71-76 % of fixes hold the truth
# (walkers 67-69 %, standing ~80 %) for 4-6 dB shadowing. With it, beacon_filter.accuracy.
SIGMA_READING_DB, SIGMA_MODEL_DB = 5.0, 3.0
ACCURACY_SCALE, ACCURACY_FLOOR_M = 1.5, 2.0
CENTROID_VARIANCE_SHARE = 0.5  # a centroid fix's variance per axis, as a share of the typical range squared
PRIOR_RANGE_FRACTION = 0.3  # sigma of the prior around the weighted centroid, as a share of the typical range
_PRIOR_DOF = 3.0  # the residuals' verdict on the noise is shrunk towards 1 with this many pseudo-observations
_REAL = (int, float)  # numpy floats subclass float; bool is excluded separately


def rssi_to_distance(rssi: Any, power_1m: Any, path_loss_exponent: float = 2.5) -> np.ndarray:
    """Log-distance path loss ``d = 10 ** ((P1m - RSSI) / (10 n))``, clamped to [0.3, 40] m; vectorised."""
    if not path_loss_exponent > 0:
        raise ValueError(f"path loss exponent must be positive; got {path_loss_exponent!r}")
    loss = (np.asarray(power_1m, dtype=float) - np.asarray(rssi, dtype=float)) / (10.0 * path_loss_exponent)
    return np.clip(10.0 ** np.minimum(loss, 3.0), MIN_RANGE_M, MAX_RANGE_M)  # the cap avoids overflow


@dataclass(frozen=True, slots=True)
class Beacon:
    """One installed beacon: canonical key, position in local metres, level ordinal, RSSI at 1 m (dBm)."""

    key: str
    x: float
    y: float
    level: int
    power_1m: float = -59.0

    def __post_init__(self) -> None:
        if parse_beacon_key(self.key) != self.key:
            raise ValueError(f"beacon key is not canonical: {self.key!r} (use parse_beacon_key)")
        if not (math.isfinite(self.x) and math.isfinite(self.y)) or isinstance(self.level, bool) \
                or not isinstance(self.level, int) or not -110.0 <= self.power_1m <= 0.0:
            raise ValueError(f"beacon {self.key}: needs a finite x, y, an integer level, power_1m in -110..0")


class BeaconMap:
    """The beacons of one venue: numpy arrays for bulk maths, plain lists for the per-scan hot path
    (indexing a list is ~10x cheaper than an array element), and a key -> row lookup. Immutable."""

    def __init__(self, beacons: Iterable[Beacon]):
        self.beacons: tuple[Beacon, ...] = tuple(beacons)
        self.keys: tuple[str, ...] = tuple(b.key for b in self.beacons)
        self.index: Mapping[str, int] = {k: i for i, k in enumerate(self.keys)}
        if len(self.index) != len(self.keys):
            raise ValueError(f"duplicate beacon keys: {[k for k, n in Counter(self.keys).items() if n > 1][:5]}")
        self._x, self._y = [b.x for b in self.beacons], [b.y for b in self.beacons]
        self._level, self._power = [b.level for b in self.beacons], [b.power_1m for b in self.beacons]
        self.x, self.y = np.array(self._x, dtype=float), np.array(self._y, dtype=float)
        self.level, self.power_1m = np.array(self._level, dtype=np.int64), np.array(self._power, dtype=float)
        self.levels = tuple(sorted(set(self._level)))
        for arr in (self.x, self.y, self.level, self.power_1m):
            arr.flags.writeable = False

    def __len__(self) -> int:
        return len(self.beacons)

    def find(self, key: str) -> int | None:
        """Row of a key in any accepted spelling; None when unknown or malformed."""
        i = self.index.get(key)
        if i is None:
            try:
                i = self.index.get(parse_beacon_key(key))
            except ValueError:
                return None
        return i


class RssiSmoother:
    """One device's locator state: its recent readings per beacon (the last ``max_readings`` within
    ``window_s`` seconds) and, with ``motion_filter``, its motion track (``beacon_filter``).

    A beacon not heard for ``stale_s`` is left out of fixes (its readings still smooth the next ones),
    so a walking shopper's fix is not dragged back by beacons already passed or on the floor just left.
    Defaults tuned on bench/beacons.py for 1 Hz scans: the track averages over time, so the window only
    has to tame single readings (3 readings; 5 lagged a walker by more than they saved).
    ``motion_filter=False`` with ``max_readings=5`` is the locator before the track (the bench's baseline).
    """

    __slots__ = ("_r", "_track", "max_readings", "motion_filter", "stale_s", "window_s")

    def __init__(self, window_s: float = 5.0, max_readings: int = 3, stale_s: float = 1.5, *,
                 motion_filter: bool = True):
        if not (window_s > 0 and stale_s > 0 and isinstance(max_readings, int) and max_readings >= 1):
            raise ValueError("smoother needs window_s > 0, stale_s > 0 and max_readings >= 1")
        self.window_s, self.max_readings, self.stale_s = float(window_s), max_readings, float(stale_s)
        self.motion_filter = bool(motion_filter)
        self._r: dict[str, list[float]] = {}  # key -> [t0, rssi0, t1, rssi1, ...]: slices beat tuples here
        self._track: list[float] | None = None  # beacon_filter's 16 floats, None before the first fix

    def __len__(self) -> int:
        return len(self._r)

    def add(self, key: str, rssi: float, t: float) -> None:
        lst = self._r.setdefault(key, [])
        lst += (t, rssi)
        if len(lst) > 2 * self.max_readings:
            del lst[:2]

    def estimates(self, now: float) -> tuple[list[str], list[float], list[int]]:
        """Fresh beacons: keys, trimmed-mean RSSI, reading counts. Drops expired readings."""
        keys, values, counts, _ = self._estimates(now)
        return keys, values, counts

    def _estimates(self, now: float) -> tuple[list[str], list[float], list[int], list[float]]:
        """``estimates`` and the mean time of each beacon's readings (how far behind its value is)."""
        keys: list[str] = []
        values: list[float] = []
        counts: list[int] = []
        times: list[float] = []
        # a scan a little out of order (now earlier than the last reading) keeps the newer readings
        oldest, fresh, latest, empty = now - self.window_s, now - self.stale_s, now + self.window_s, []
        for key, lst in self._r.items():
            if lst[0] < oldest or lst[-2] > latest:  # expired, or far "in the future": the clock was reset
                lst[:] = [x for t, v in zip(lst[::2], lst[1::2], strict=True) if oldest <= t <= latest for x in (t, v)]
                if not lst:
                    empty.append(key)
                    continue
            if lst[-2] >= fresh:
                vals = lst[1::2]
                n = len(vals)
                keys.append(key)
                # trimmed mean: one deep fade or one reflection-boosted reading is common
                values.append((sum(vals) - min(vals) - max(vals)) / (n - 2) if n >= 4 else sum(vals) / n)
                counts.append(n)
                times.append(sum(lst[::2]) / n)
        for key in empty:
            del self._r[key]
        return keys, values, counts, times

    def value(self, key: str, now: float) -> float | None:
        keys, values, _ = self.estimates(now)
        return values[keys.index(key)] if key in keys else None

    def clone(self) -> RssiSmoother:
        c = RssiSmoother(self.window_s, self.max_readings, self.stale_s, motion_filter=self.motion_filter)
        c._r = {k: list(v) for k, v in self._r.items()}
        c._track = list(self._track) if self._track is not None else None
        return c

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``readings`` maps key -> [[t, rssi], ...], oldest first; ``track`` is
        the motion track's 16 floats (or null), exact through JSON, so the next fix is the same."""
        readings = {k: [list(p) for p in zip(v[::2], v[1::2], strict=True)] for k, v in self._r.items()}
        return {"window_s": self.window_s, "max_readings": self.max_readings, "stale_s": self.stale_s,
                "motion_filter": self.motion_filter, "readings": readings,
                "track": list(self._track) if self._track is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RssiSmoother:
        """The inverse of ``to_dict``. A dict from before the motion track (no ``motion_filter``,
        no ``track``) loads with the filter on and no track yet; a track that is not 16 finite
        numbers with sane covariances is dropped (the next fix starts a new one), never raised."""
        try:
            s = cls(float(data["window_s"]), int(data["max_readings"]), float(data["stale_s"]),
                    motion_filter=bool(data.get("motion_filter", True)))
            for key, rows in dict(data.get("readings") or {}).items():
                flat = [x for t, v in sorted((float(t), float(v)) for t, v in rows) for x in (t, v)]
                if flat and all(map(math.isfinite, flat)):
                    s._r[str(key)] = flat[-2 * s.max_readings:]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a serialised RssiSmoother: {exc}") from exc
        track = data.get("track")
        if isinstance(track, list | tuple) and all(isinstance(z, _REAL) and not isinstance(z, bool) for z in track):
            try:
                floats = [float(z) for z in track]
            except OverflowError:  # an integer beyond float range
                return s
            if beacon_filter.valid(floats):
                s._track = floats
        return s


@dataclass(frozen=True, slots=True)
class BeaconFix:
    """A position in local metres. ``method``: "lsq" (range fit) or "centroid" (fallback)."""

    x: float
    y: float
    level: int
    accuracy_m: float
    beacons_used: int
    unknown_beacons: int
    method: str


ScanEntry = tuple[str, float] | tuple[str, float, float | None]
Row = tuple[float, float, float, float]  # beacon x, beacon y, ln range, weight of the log-range residual


def locate(
    scan: Sequence[ScanEntry], beacon_map: BeaconMap, smoother_state: RssiSmoother, now: float, *,
    path_loss_exponent: float = 2.5, max_beacons: int = 12, vote_beacons: int = 5,
) -> BeaconFix | None:
    """Feed one scan to the device's smoother and estimate where the device is; None if nothing is heard.

    Fixes of one device come in time order (a scan up to 1 s out of order is tolerated); with the
    smoother's ``motion_filter`` each fix also moves the device's track, and the position and
    ``accuracy_m`` returned are the track's (``method`` still says how this scan's fit went).

    A scan entry is ``(key, rssi_dbm)`` or ``(key, rssi_dbm, power_1m_override)``: the 1 m calibration
    the beacon advertises (convert Eddystone's 0 m value with ``eddystone_power_1m``). Unknown or
    malformed keys are counted, never raised; RSSI outside -130..0 or non-finite is ignored (0 is iOS
    for "unknown"). Scalar Python on purpose: a fix uses <= max_beacons rows, and numpy's per-call
    overhead (~1-2 µs) made the vectorised version 2x slower (bench/beacons.py prints µs per call).
    """
    if not (path_loss_exponent > 0 and math.isfinite(now) and max_beacons >= 1 and vote_beacons >= 1):
        raise ValueError("need path_loss_exponent > 0, a finite now, max_beacons and vote_beacons >= 1")
    unknown = 0
    keys, index, power, level_of = beacon_map.keys, beacon_map.index, beacon_map._power, beacon_map._level
    for entry in scan:
        i = index.get(entry[0])
        if i is None and (i := beacon_map.find(entry[0])) is None:
            unknown += 1
            continue
        rssi = entry[1]
        if rssi.__class__ is bool or not isinstance(rssi, _REAL) or not -130.0 <= rssi < 0.0:  # NaN fails too
            continue
        if len(entry) > 2 and (tx := entry[2]).__class__ is not bool and isinstance(tx, _REAL) and -110 <= tx <= 0:
            rssi = rssi - tx + power[i]  # stored as if the map's calibration were the advertised one
        smoother_state.add(keys[i], float(rssi), now)

    est = [(v, i, n, t) for k, v, n, t in zip(*smoother_state._estimates(now), strict=True)
           if (i := index.get(k)) is not None]
    if not est:
        return None
    est.sort(reverse=True)  # strongest first
    votes: dict[int, float] = {}
    for v, i, _, _ in est[:vote_beacons]:
        votes[level_of[i]] = votes.get(level_of[i], 0.0) + max(v - NOISE_FLOOR_DBM, 1.0)
    level = max(votes, key=votes.__getitem__)  # on a tie the strongest beacon's level (inserted first)

    used = [e for e in est if level_of[e[1]] == level][:max_beacons]
    ten_n = 10.0 * path_loss_exponent
    per_db = math.log(10.0) / ten_n  # a dB error e scales a range by 10 ** (e / 10n) = exp(e * per_db)
    rows: list[Row] = []
    sw = cx = cy = r_typ = t_mean = 0.0
    for v, i, cnt, t in used:
        d = min(max(10.0 ** min((power[i] - v) / ten_n, 3.0), MIN_RANGE_M), MAX_RANGE_M)
        w = 1.0 / (per_db * per_db * (SIGMA_MODEL_DB**2 + SIGMA_READING_DB**2 / cnt))  # 1 / var(ln r)
        rows.append((bx := beacon_map._x[i], by := beacon_map._y[i], math.log(d), w))
        c = w / (d * d)  # centroid weight 1 / var(r): ~1/d^2, less for a beacon heard only once or twice
        sw, cx, cy, r_typ, t_mean = sw + c, cx + c * bx, cy + c * by, r_typ + c * d, t_mean + c * t
    cx, cy, r_typ, t_mean = cx / sw, cy / sw, r_typ / sw, t_mean / sw
    fit = _fit(rows, cx, cy, PRIOR_RANGE_FRACTION * r_typ) if len(rows) >= 3 else None
    if fit is None:  # among the beacons, but where is unknown: the typical range is the honest radius
        x, y, acc, method = cx, cy, r_typ, "centroid"
        r11 = r22 = CENTROID_VARIANCE_SHARE * r_typ * r_typ
        r12 = 0.0
    else:
        (x, y, acc, c11, c12, c22), method = fit, "lsq"
        r11, r12, r22 = beacon_filter.R_SCALE * c11, beacon_filter.R_SCALE * c12, beacon_filter.R_SCALE * c22
    if smoother_state.motion_filter:
        # the fit measures where the device was at the (pull-weighted) mean time of its readings
        floor2 = beacon_filter.R_FLOOR_M**2
        track = beacon_filter.step(smoother_state._track, now, level, x, y, r11 + floor2, r12, r22 + floor2,
                                   min(max(now - t_mean, 0.0), smoother_state.window_s))
        smoother_state._track = track
        x, y, acc = track[2], track[3], beacon_filter.accuracy(track)
    return BeaconFix(x, y, level, min(max(acc, MIN_ACCURACY_M), MAX_ACCURACY_M), len(used), unknown, method)


def _fit(rows: list[Row], cx: float, cy: float, prior_m: float) -> tuple[float, ...] | None:
    """Maximum likelihood under log-normal shadowing: minimise sum w (ln r - ln |p - b|)^2.

    Log-range residuals are what the path-loss model makes Gaussian; through the gradient of ln d a
    beacon's pull on the position falls as 1/d^2 (on the bench the fit has 13 % less error than the
    weighted centroid). A Gaussian prior of ``prior_m`` around the centroid shrinks noisy fits towards
    it (-4 % p90 error) and keeps them off the mirror solution of beacons nearly in a row; it weakens
    as far as the ranges agree better than the noise model expects, so consistent ranges are fitted
    exactly. The cost is not convex: a second start from the linearised solution runs when that
    point explains the ranges better.
    (x, y, accuracy, covariance c11, c12, c22 with the residuals' verdict applied), or None when it
    does not settle (the caller falls back to the centroid).
    """
    lam0, cap_m = 1.0 / (prior_m * prior_m), prior_m / PRIOR_RANGE_FRACTION
    best = _gauss_newton(rows, cx, cy, lam0, cap_m, cx, cy)
    lin = _linear_start(rows)
    if lin is not None and (best is None or _chi2(rows, *lin) < best[6]):
        other = _gauss_newton(rows, cx, cy, lam0, cap_m, *lin)
        if other is not None and (best is None or other[0] < best[0]):
            best = other
    if best is None:
        return None
    _, x, y, c11, c12, c22, chi2 = best
    factor = (chi2 + _PRIOR_DOF) / (len(rows) - 2 + _PRIOR_DOF)  # residuals' verdict, shrunk towards 1
    c11, c12, c22 = factor * c11, factor * c12, factor * c22
    return x, y, math.sqrt(ACCURACY_SCALE**2 * (c11 + c22) + ACCURACY_FLOOR_M**2), c11, c12, c22


def _chi2(rows: list[Row], x: float, y: float) -> float:
    total = 0.0
    for a, b, lr, w in rows:
        d2 = (x - a) ** 2 + (y - b) ** 2
        total += w * (lr - 0.5 * math.log(d2 if d2 > 0.09 else 0.09)) ** 2
    return total


def _linear_start(rows: list[Row]) -> tuple[float, float] | None:
    """Closed-form least squares on a x + b y - R / 2 = (a^2 + b^2 - r^2) / 2 with R = |p|^2 unknown too.

    Exact for exact ranges, poor with noise (r^2 amplifies it): only a second start. Weighted 1 / r^2,
    not the 1 / r^4 the noise would ask for, which leaves a 1 m and a 30 m beacon numerically singular.
    """
    m11 = m12 = m13 = m22 = m23 = m33 = g1 = g2 = g3 = 0.0
    for a, b, lr, _ in rows:
        r2 = math.exp(2 * lr)
        w, z = 1.0 / r2, (a * a + b * b - r2) / 2
        wa, wb = w * a, w * b
        m11, m12, m13, m22, m23, m33 = m11 + wa * a, m12 + wa * b, m13 - wa / 2, m22 + wb * b, m23 - wb / 2, m33 + w / 4
        g1, g2, g3 = g1 + wa * z, g2 + wb * z, g3 - w * z / 2
    c11, c12, c13 = m22 * m33 - m23 * m23, m13 * m23 - m12 * m33, m12 * m23 - m13 * m22
    det = m11 * c11 + m12 * c12 + m13 * c13
    if not abs(det) > 1e-12 * abs(m11 * m22 * m33):  # beacons (nearly) in a row
        return None
    x = (c11 * g1 + c12 * g2 + c13 * g3) / det
    y = (c12 * g1 + (m11 * m33 - m13 * m13) * g2 + (m12 * m13 - m11 * m23) * g3) / det
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None


def _gauss_newton(rows: list[Row], cx: float, cy: float, lam0: float, cap_m: float,
                  x: float, y: float) -> tuple[float, float, float, float, float, float, float] | None:
    """(cost, x, y, covariance c11, c12, c22, chi2) at the optimum reached from (x, y); None if unsettled."""
    lam, dof = lam0, len(rows) - 2
    px, py, sx, sy, best, halvings = x, y, 0.0, 0.0, math.inf, 0
    for _ in range(32):
        a11 = a22 = lam
        a12 = chi2 = 0.0
        gx, gy = lam * (cx - x), lam * (cy - y)
        for a, b, lr, w in rows:
            dx, dy = x - a, y - b
            d2 = dx * dx + dy * dy
            if d2 < 0.09:  # within 0.3 m of a beacon: ranges are clamped there too
                d2 = 0.09
            e = lr - 0.5 * math.log(d2)  # ln r - ln d; the gradient of ln d is (dx, dy) / d2
            chi2 += w * e * e
            t = w / (d2 * d2)
            a11, a22, a12 = a11 + t * dx * dx, a22 + t * dy * dy, a12 + t * dx * dy
            t *= e * d2
            gx, gy = gx + t * dx, gy + t * dy
        cost = chi2 + lam * ((x - cx) ** 2 + (y - cy) ** 2)
        if cost > best and halvings < 4:  # overshot (ln d is far from quadratic near a beacon): half the step
            sx, sy, halvings = sx / 2, sy / 2, halvings + 1
            x, y = px + sx, py + sy
            continue
        best, px, py, halvings = cost, x, y, 0
        det = a11 * a22 - a12 * a12
        sx, sy = (a22 * gx - a12 * gy) / det, (a11 * gy - a12 * gx) / det
        step = math.hypot(sx, sy)
        if step > cap_m:  # trust region: never jump further than a typical range
            sx, sy = sx * cap_m / step, sy * cap_m / step
        x, y = px + sx, py + sy
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        # settled to 10 cm (errors are metres: this pass's A and chi2 will do) with the prior settled too:
        # steady, or too weak to bend even the weakest direction of the data (smallest eigenvalue of A
        # without the prior). With exact ranges it fades every pass until then, and the fit is exact.
        nxt = lam0 * min(1.0, max(chi2 / dof, 1e-12))  # never 0: with beacons in a row A would be singular
        weakest = (a11 + a22 - math.hypot(a11 - a22, 2 * a12)) / 2 - lam
        if step < 0.1 and (nxt > 0.9 * lam or lam < 1e-3 * weakest):
            return cost, x, y, a22 / det, -a12 / det, a11 / det, chi2
        lam = nxt
        best = min(best, chi2 + lam * ((px - cx) ** 2 + (py - cy) ** 2))  # same point, weaker prior
    return None


def beacons_from_geojson(data: Mapping[str, Any], projection: Any) -> list[Beacon]:
    """Beacons from a parsed ``zones/*-beacons.geojson`` (Point features with key, level, power_1m)."""
    out = []
    for i, f in enumerate(data.get("features") or []):
        try:
            lon, lat = f["geometry"]["coordinates"][:2]
            p = f["properties"]
            x, y = projection.to_local(np.array([lon]), np.array([lat]))
            out.append(Beacon(parse_beacon_key(p["key"]), float(x[0]), float(y[0]), int(p["level"]),
                              float(p.get("power_1m", -59.0))))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"beacon feature {i}: {exc!r}") from exc
    return out
