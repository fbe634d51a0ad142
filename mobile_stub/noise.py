"""Indoor-positioning-like error on true positions: drift, jitter, outliers, honest-ish accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mobile_stub.walker import Sample


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """Error model parameters; the defaults resemble Wi-Fi/BLE indoor positioning."""

    sigma_m: float = 3.0  # stationary standard deviation of the error, per axis
    drift_tau_s: float = 20.0  # correlation time of the slow drift
    jitter_m: float = 0.7  # fast white noise on top of the drift
    outlier_p: float = 0.01
    outlier_m: tuple[float, float] = (15.0, 30.0)
    accuracy_clip: tuple[float, float] = (2.0, 25.0)
    honest_outlier_p: float = 0.5  # share of outliers whose accuracy admits the big error
    floor_null_p: float = 0.02
    floor_wrong_p: float = 0.003  # a neighbouring level reported; rare, but real systems do it


@dataclass(frozen=True, slots=True)
class NoisyFix:
    """A sample as the phone would report it, still in local metres."""

    t_offset_s: float
    x: float
    y: float
    accuracy_m: float
    floor: int | None
    true_x: float
    true_y: float


def add_noise(
    samples: Sequence[Sample],
    seed: int,
    levels: Sequence[int] = (),
    config: NoiseConfig | None = None,
) -> list[NoisyFix]:
    """Apply the error model to a walk; the same seed gives the same fixes."""
    cfg = config or NoiseConfig()
    n = len(samples)
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    t = np.array([s.t_offset_s for s in samples])
    dt = np.diff(t, prepend=t[0])
    # AR(1) per axis with a stationary sigma: phi = exp(-dt / tau) keeps it right for any sample rate
    phi = np.exp(-dt / cfg.drift_tau_s)
    innov = rng.normal(0.0, 1.0, (n, 2)) * (cfg.sigma_m * np.sqrt(1.0 - phi**2))[:, None]
    drift = np.empty((n, 2))
    drift[0] = rng.normal(0.0, cfg.sigma_m, 2)
    for i in range(1, n):
        drift[i] = phi[i] * drift[i - 1] + innov[i]
    err = drift + rng.normal(0.0, cfg.jitter_m, (n, 2))
    mag = np.hypot(err[:, 0], err[:, 1])
    lo, hi = cfg.accuracy_clip
    # reported accuracy tracks the true error loosely, as on phones
    acc = np.clip(0.5 * cfg.sigma_m + 0.8 * mag + rng.normal(0.0, 0.8, n), lo, hi)
    out_mask = rng.random(n) < cfg.outlier_p
    k = int(out_mask.sum())
    if k:
        ang = rng.uniform(0.0, 2 * math.pi, k)
        dist = rng.uniform(*cfg.outlier_m, k)
        err[out_mask] += np.column_stack((np.cos(ang), np.sin(ang))) * dist[:, None]
        honest = rng.random(k) < cfg.honest_outlier_p
        # an honest outlier may report worse than the clip: these are the fixes a server must ignore
        acc[np.flatnonzero(out_mask)[honest]] = dist[honest] * rng.uniform(0.9, 1.6, int(honest.sum()))
    floor_draw = rng.random(n)
    ordinals = sorted(set(levels))
    out: list[NoisyFix] = []
    for i, s in enumerate(samples):
        floor = s.floor
        if floor_draw[i] < cfg.floor_null_p:
            floor = None
        elif floor_draw[i] < cfg.floor_null_p + cfg.floor_wrong_p and floor in ordinals:
            j = ordinals.index(floor)
            near = [ordinals[m] for m in (j - 1, j + 1) if 0 <= m < len(ordinals)]
            floor = near[int(floor_draw[i] * 1e6) % len(near)] if near else floor
        out.append(NoisyFix(
            s.t_offset_s, s.x + float(err[i, 0]), s.y + float(err[i, 1]),
            round(float(acc[i]), 1), floor, s.x, s.y,
        ))
    return out
