"""Bluetooth beacon radio as a phone would hear it: what the stub's scans and bench/beacons.py simulate.

Per beacon, fixed for a run: the true path-loss exponent n ~ U(2.5, 3.0), a calibration error
~ U(-2, 2) dB (the registry's power_1m is off by that), and 15-20 dB lost per floor crossed. Per
reading: log-normal shadowing N(0, sigma) dB (optionally correlated in time), readings below -95 dBm
unheard, and 20 % of the rest dropped (scan windows miss adverts). Beacons hang at 2.7 m, the phone
is at 1.2 m, storeys are 5 m apart; RSSI is reported in whole dBm as phones do. The positioning
code knows none of this: it sees only the registry and the readings.
"""

from __future__ import annotations

import math

import numpy as np

from mallfence.spatial.beacons import BeaconMap

N_TRUE, CAL_DB, FLOOR_DB = (2.5, 3.0), 2.0, (15.0, 20.0)
THRESHOLD_DBM, DROPOUT, STOREY_M, BEACON_Z, PHONE_Z = -95.0, 0.2, 5.0, 2.7, 1.2
EDDYSTONE_0M_GAIN_DB = 41.0  # Eddystone frames advertise the power at 0 m


class Radio:
    """The true radio environment of one venue: fixed per run (seeded), unknown to the estimator."""

    def __init__(self, bmap: BeaconMap, rng: np.random.Generator):
        n = len(bmap)
        self.bmap = bmap
        self.bx, self.by = bmap.x, bmap.y
        self.level = bmap.level
        self.bz = bmap.level * STOREY_M + BEACON_Z
        self.n_true = rng.uniform(*N_TRUE, n)
        self.p_true = bmap.power_1m + rng.uniform(-CAL_DB, CAL_DB, n)
        self.floor_db = rng.uniform(*FLOOR_DB, n)
        self.eddystone = np.array([k.startswith("eddystone:") for k in bmap.keys], dtype=bool)

    def mean_rssi(self, x: np.ndarray, y: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """(samples, beacons) noiseless RSSI."""
        dz = self.bz[None, :] - (floor[:, None] * STOREY_M + PHONE_Z)
        d = np.sqrt((x[:, None] - self.bx) ** 2 + (y[:, None] - self.by) ** 2 + dz**2)
        crossed = np.abs(self.level[None, :] - floor[:, None])
        return self.p_true - 10 * self.n_true * np.log10(np.maximum(d, 0.1)) - self.floor_db * crossed

    def hear(self, x: np.ndarray, y: np.ndarray, floor: np.ndarray, rng: np.random.Generator, *,
             sigma: float = 5.0, corr_s: float = 0.0, phone_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(rssi, heard): noisy whole-dBm readings per (sample, beacon) one second apart, and which were heard."""
        rssi = self.mean_rssi(x, y, floor) + phone_db + shadowing(rng, (len(x), len(self.bx)), sigma, corr_s)
        heard = (rssi >= THRESHOLD_DBM) & (rng.random(rssi.shape) >= DROPOUT)
        return np.round(rssi), heard

    def readings(self, rssi_row: np.ndarray, heard_row: np.ndarray) -> list[dict[str, object]]:
        """One scan as an app reports it: identity, RSSI, and for Eddystone the 0 m power it advertises."""
        out: list[dict[str, object]] = []
        for j in np.flatnonzero(heard_row).tolist():
            reading: dict[str, object] = {"key": self.bmap.keys[j], "rssi": float(rssi_row[j])}
            if self.eddystone[j]:
                reading["tx_power"] = round(float(self.bmap.power_1m[j]) + EDDYSTONE_0M_GAIN_DB)
            out.append(reading)
        return out


def shadowing(rng: np.random.Generator, shape: tuple[int, int], sigma: float, corr_s: float) -> np.ndarray:
    """N(0, sigma) per reading; with corr_s > 0 an AR(1) in time per beacon (a body or a trolley in the
    way stays there for a while), which the smoother's averaging cannot remove as well."""
    eps = rng.normal(0.0, sigma, shape)
    if corr_s <= 0:
        return eps
    rho = math.exp(-1.0 / corr_s)
    for t in range(1, shape[0]):
        eps[t] = rho * eps[t - 1] + math.sqrt(1 - rho * rho) * eps[t]
    return eps
