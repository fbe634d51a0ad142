"""Test data built through the public API, in local metres around a fixed anchor."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
from fastapi.testclient import TestClient
from shapely.geometry.base import BaseGeometry

from mallfence.spatial.projection import LocalProjection
from tests.auth import app_key

ANCHOR = (-2.2426, 53.4808)  # lon, lat
PROJ = LocalProjection(*ANCHOR)
# Fixes are dated from an hour ago: inside the replay window, never in the future.
START = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
# Debounces off and short dwell so a handful of fixes shows every transition.
INSTANT = {"enter_debounce_s": 0, "exit_debounce_s": 0, "dwell_s": 30}


def geojson(local: BaseGeometry) -> dict[str, Any]:
    """A geometry drawn in local metres, as WGS84 GeoJSON (lists, as a client would send)."""
    return json.loads(json.dumps(shapely.geometry.mapping(PROJ.geometry_to_wgs84(local))))


def lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = PROJ.to_wgs84([x], [y])
    return float(lon[0]), float(lat[0])


def create_venue(client: TestClient, slug: str = "mall", levels: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    r = client.post("/v1/venues", json={"slug": slug, "name": slug.title(), "timezone": "Europe/London",
                                         "anchor": list(ANCHOR)})
    assert r.status_code == 201, r.text
    for ordinal in levels:
        r = client.post(f"/v1/venues/{slug}/levels", json={"ordinal": ordinal, "name": f"Level {ordinal}"})
        assert r.status_code == 201, r.text
    return r.json()


def create_zone(client: TestClient, slug: str, local: BaseGeometry, **fields: Any) -> dict[str, Any]:
    body = {"name": "Zone", "kind": "store", "level": 0, "geometry": geojson(local), "presence": INSTANT,
            **fields}
    r = client.post(f"/v1/venues/{slug}/zones", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def register(client: TestClient, slug: str = "mall") -> tuple[str, dict[str, str]]:
    r = client.post("/v1/devices", json={"venue": slug, "platform": "stub"}, headers=app_key(client, slug))
    assert r.status_code == 201, r.text
    body = r.json()
    return body["device_id"], {"Authorization": f"Bearer {body['token']}"}


def fix(x: float, y: float, t: float, *, floor: int | None = 0, accuracy: float = 3.0,
        start: datetime | None = None, fix_id: str | None = None) -> dict[str, Any]:
    """A fix at local (x, y), ``t`` seconds after ``start`` (default: START)."""
    lon, lat = lonlat(x, y)
    start = start or START
    body: dict[str, Any] = {"lat": lat, "lon": lon, "accuracy_m": accuracy, "floor": floor,
                            "ts": (start + timedelta(seconds=t)).isoformat()}
    if fix_id is not None:
        body["id"] = fix_id
    return body


# -- beacons, QR codes, staff ---------------------------------------------------------------------------
UUID = "7b1e4f0c-5a2d-4c8e-9f3b-2d6a8e1c0b54"
FLOOR_LOSS_DB = 18.0  # what a concrete slab takes off a beacon on another level


def beacon_body(x: float, y: float, level: int, minor: int, **fields: Any) -> dict[str, Any]:
    return {"uuid": UUID, "major": 1, "minor": minor, "position": list(lonlat(x, y)), "level": level,
            "power_1m": -59.0, **fields}


def add_beacons(client: TestClient, slug: str, spots: list[tuple[float, float, int]]) -> list[dict[str, Any]]:
    """Beacons at local (x, y, level), minors 1, 2, ... in order."""
    out = []
    for minor, (x, y, level) in enumerate(spots, start=1):
        r = client.post(f"/v1/venues/{slug}/beacons", json=beacon_body(x, y, level, minor))
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


def scan(beacons: list[dict[str, Any]], x: float, y: float, level: int, t: float, *, n: float = 2.5,
         start: datetime | None = None, scan_id: str | None = None) -> dict[str, Any]:
    """A noiseless scan heard at local (x, y) on ``level``: log-distance RSSI from each registered beacon
    (``n`` the path-loss exponent), minus a slab per level between; below -100 dBm is not heard."""
    readings = []
    for b in beacons:
        bx, by = PROJ.to_local([b["position"][0]], [b["position"][1]])
        d = max(0.3, ((float(bx[0]) - x) ** 2 + (float(by[0]) - y) ** 2) ** 0.5)
        rssi = b["power_1m"] - 10 * n * math.log10(d) - FLOOR_LOSS_DB * abs(b["level"] - level)
        if rssi >= -100:
            readings.append({"key": b["key"], "rssi": round(rssi, 1)})
    body: dict[str, Any] = {"ts": ((start or START) + timedelta(seconds=t)).isoformat(), "beacons": readings}
    if scan_id is not None:
        body["id"] = scan_id
    return body


def add_devices(session: Any, venue_id: int, ids: list[str], token_hash: str = "x") -> None:
    """Devices written straight to the database (each with its own shopper), for tests below the API."""
    from mallfence.devices.models import Device, Shopper

    session.add_all(Shopper(id=d, venue_id=venue_id) for d in ids)
    session.flush()
    session.add_all(Device(id=d, venue_id=venue_id, shopper_id=d, token_hash=f"{token_hash}{d}", platform="android")
                    for d in ids)
    session.flush()
