"""A device's motion track: a Kalman filter over the range fits of ``beacons.locate``.

Why: a fit sees only the smoothed RSSI of the last few seconds, so a walking shopper's fix trails by
the age of those readings, and each fit keeps most of its shadowing. The track carries position and
velocity from fix to fix: a standing device's fixes average down, a walking one's are pulled ahead
along its velocity, and a fit that disagrees with the track by much more than both expect moves it
less (a turn, a fade, a mirror solution).

Model, per axis, in local metres: velocity an Ornstein-Uhlenbeck process (a walking-speed prior of
``SPEED_SD`` per axis that forgets its direction over ``TAU_S``: shoppers walk ~1.3 m/s on legs of
tens of seconds, stop, turn), position its integral. The fit measures the position ``lag`` seconds
ago (the mean age of the readings it used), p - lag * v, with the fit's own covariance, scaled up
because consecutive fits share most of their readings. The track restarts on a floor change (the
floor vote moved the device to other beacons), after ``RESET_S`` without a fix, when time runs
backwards by more than a second, and whenever its numbers stop making sense.

Pure scalar Python on a flat list of 16 floats (small in Redis, a few µs a step):
``[t, level, x, y, vx, vy, Pxx, Pxy, Pyy, Pxvx, Pxvy, Pyvx, Pyvy, Pvxvx, Pvxvy, Pvyvy]``.
Constants tuned on bench/beacons.py seed 1 (seeds 2 and 3 held out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TRACK_LEN = 16
SPEED_SD = 0.6  # m/s per axis, stationary: a 1.3 m/s walk is ~1.5 sd, standing is well inside
TAU_S = 20.0  # velocity memory; 10-40 s measure the same, 5 s forgets a walk before it has learnt it
RESET_S = 30.0  # beyond, the prediction knows little (~11 m sd) and would carry a walk ~20 m; within, it helps
#                 an app scanning every 5 s (bench --scan-s 5: p90 -15 % against restarting after 4 s)
R_SCALE = 3.0  # consecutive fits share most readings (a 3-reading window): their errors are far from independent
R_FLOOR_M = 0.5  # no fit is better than this, whatever its covariance says
GATE = 3.0  # Mahalanobis^2 (2 dof) beyond which a fit counts for less, in proportion: Huber-like
ACCURACY_SCALE, ACCURACY_FLOOR_M = 1.2, 0.5  # accuracy_m from the track's position covariance; ~70 % hold the truth


def start(now: float, level: int, zx: float, zy: float, r11: float, r12: float, r22: float) -> list[float]:
    """A new track at a fix: there, not known to move (velocity ~ the walking-speed prior)."""
    s2 = SPEED_SD * SPEED_SD
    return [now, float(level), zx, zy, 0.0, 0.0, r11, r12, r22, 0.0, 0.0, 0.0, 0.0, s2, 0.0, s2]


def step(track: Sequence[float] | None, now: float, level: int, zx: float, zy: float,
         r11: float, r12: float, r22: float, lag: float) -> list[float]:
    """The track after a fit at (zx, zy) with covariance [[r11, r12], [r12, r22]] of the point the
    device was at ``lag`` seconds before ``now``. Never raises; always finite for finite inputs."""
    if track is None or len(track) != TRACK_LEN or track[1] != level or not -1.0 <= now - track[0] <= RESET_S:
        return start(now, level, zx, zy, r11, r12, r22)
    t, _, x, y, u, v, pxx, pxy, pyy, pxu, pxv, pyu, pyv, puu, puv, pvv = track
    dt = now - t
    if dt > 0:  # predict; a scan a little out of order (dt <= 0) is folded in where the track is
        a = math.exp(-dt / TAU_S)  # velocity kept
        b = TAU_S * (1.0 - a)  # distance covered per unit of initial velocity
        s2 = SPEED_SD * SPEED_SD
        # exact discrete noise of an integrated Ornstein-Uhlenbeck velocity
        qvv = s2 * (1.0 - a * a)
        qpv = s2 * TAU_S * (1.0 - a) ** 2
        qpp = max(s2 * TAU_S * TAU_S * (2.0 * dt / TAU_S - 3.0 + 4.0 * a - a * a), 0.0)
        x, y, u, v = x + b * u, y + b * v, a * u, a * v
        # P <- F P F' + Q, F = [[I, b I], [0, a I]]
        pxx, pxy, pyy = (pxx + 2.0 * b * pxu + b * b * puu + qpp, pxy + b * (pxv + pyu) + b * b * puv,
                         pyy + 2.0 * b * pyv + b * b * pvv + qpp)
        pxu, pxv, pyu, pyv = (a * (pxu + b * puu) + qpv, a * (pxv + b * puv), a * (pyu + b * puv),
                              a * (pyv + b * pvv) + qpv)
        puu, puv, pvv = a * a * puu + qvv, a * a * puv, a * a * pvv + qvv
        t = now
    # update with z = H s + noise, H = [I, -lag I]: T = P H' (rows x, y, vx, vy), M = H P H'
    L = lag
    tx1, tx2 = pxx - L * pxu, pxy - L * pxv
    ty1, ty2 = pxy - L * pyu, pyy - L * pyv
    tu1, tu2 = pxu - L * puu, pyu - L * puv
    tv1, tv2 = pxv - L * puv, pyv - L * pvv
    m11, m12, m22 = tx1 - L * tu1, tx2 - L * tu2, ty2 - L * tv2
    ex, ey = zx - (x - L * u), zy - (y - L * v)
    s11, s12, s22 = m11 + r11, m12 + r12, m22 + r22
    det = s11 * s22 - s12 * s12
    if not det > 0.0:
        return start(now, level, zx, zy, r11, r12, r22)
    d2 = (s22 * ex * ex - 2.0 * s12 * ex * ey + s11 * ey * ey) / det
    if d2 > GATE:  # the fit's noise as large as it takes to make this innovation merely unusual
        k = d2 / GATE
        s11, s12, s22 = m11 + k * r11, m12 + k * r12, m22 + k * r22
        det = s11 * s22 - s12 * s12
    i11, i12, i22 = s22 / det, -s12 / det, s11 / det
    # K = T S^-1; s += K e; P -= K T'
    kx1, kx2 = tx1 * i11 + tx2 * i12, tx1 * i12 + tx2 * i22
    ky1, ky2 = ty1 * i11 + ty2 * i12, ty1 * i12 + ty2 * i22
    ku1, ku2 = tu1 * i11 + tu2 * i12, tu1 * i12 + tu2 * i22
    kv1, kv2 = tv1 * i11 + tv2 * i12, tv1 * i12 + tv2 * i22
    out = [t, float(level), x + kx1 * ex + kx2 * ey, y + ky1 * ex + ky2 * ey,
           u + ku1 * ex + ku2 * ey, v + kv1 * ex + kv2 * ey,
           pxx - (kx1 * tx1 + kx2 * tx2), pxy - (kx1 * ty1 + kx2 * ty2), pyy - (ky1 * ty1 + ky2 * ty2),
           pxu - (kx1 * tu1 + kx2 * tu2), pxv - (kx1 * tv1 + kx2 * tv2),
           pyu - (ky1 * tu1 + ky2 * tu2), pyv - (ky1 * tv1 + ky2 * tv2),
           puu - (ku1 * tu1 + ku2 * tu2), puv - (ku1 * tv1 + ku2 * tv2), pvv - (kv1 * tv1 + kv2 * tv2)]
    if not valid(out):  # rounding drove a variance to zero, or an input was extreme: start over here
        return start(now, level, zx, zy, r11, r12, r22)
    return out


def valid(track: Sequence[float]) -> bool:
    """16 finite numbers with positive variances and position and velocity covariances that are
    positive definite (what a serialised track must be to be used)."""
    if len(track) != TRACK_LEN or not math.isfinite(sum(track)):  # a NaN or an inf anywhere (or ~1e308s)
        return False
    pxx, pxy, pyy, puu, puv, pvv = track[6], track[7], track[8], track[13], track[14], track[15]
    return pxx > 0 and pyy > 0 and puu > 0 and pvv > 0 and pxx * pyy > pxy * pxy and puu * pvv > puv * puv


def accuracy(track: Sequence[float]) -> float:
    """Radius (m) that holds the truth ~70 % of the time on the bench, from the position covariance."""
    return math.sqrt(ACCURACY_SCALE**2 * (track[6] + track[8]) + ACCURACY_FLOOR_M**2)
