"""Local metric plane around a venue anchor.

A mall is at most a few kilometres across, so a local tangent plane (equirectangular scaled by the
WGS84 radii of curvature at the anchor) is exact to millimetres over that extent and costs two
multiply-adds per point. Margins, radii and beacon ranges are then plain metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

_A = 6_378_137.0  # WGS84 semi-major axis, metres
_E2 = 6.694_379_990_14e-3  # WGS84 first eccentricity squared


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Maps (lon, lat) in degrees to (x east, y north) in metres around an anchor, and back."""

    lon0: float
    lat0: float
    metres_per_degree: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        phi = math.radians(self.lat0)
        w = 1.0 - _E2 * math.sin(phi) ** 2
        meridional = _A * (1.0 - _E2) / w**1.5
        prime_vertical = _A / math.sqrt(w)
        scale = (math.radians(1.0) * prime_vertical * math.cos(phi), math.radians(1.0) * meridional)
        object.__setattr__(self, "metres_per_degree", scale)  # per call it cost more than projecting a point

    def to_local(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kx, ky = self.metres_per_degree
        with np.errstate(invalid="ignore", over="ignore"):  # out-of-range input stays inf / NaN, no warning
            return (np.asarray(lons, dtype=float) - self.lon0) * kx, (np.asarray(lats, dtype=float) - self.lat0) * ky

    def to_wgs84(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kx, ky = self.metres_per_degree
        return np.asarray(xs, dtype=float) / kx + self.lon0, np.asarray(ys, dtype=float) / ky + self.lat0

    def geometry_to_local(self, geom: BaseGeometry) -> BaseGeometry:
        kx, ky = self.metres_per_degree
        lon0, lat0 = self.lon0, self.lat0
        return shapely.transform(geom, lambda c: np.column_stack(((c[:, 0] - lon0) * kx, (c[:, 1] - lat0) * ky)))

    def geometry_to_wgs84(self, geom: BaseGeometry) -> BaseGeometry:
        kx, ky = self.metres_per_degree
        lon0, lat0 = self.lon0, self.lat0
        return shapely.transform(geom, lambda c: np.column_stack((c[:, 0] / kx + lon0, c[:, 1] / ky + lat0)))

    def distance_m(self, lon: float, lat: float) -> float:
        """Distance in metres from the anchor to (lon, lat); valid for the local extent only."""
        x, y = self.to_local(np.array([lon]), np.array([lat]))
        return float(math.hypot(x[0], y[0]))
