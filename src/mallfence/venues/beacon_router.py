"""Operator API: the beacon registry (CRUD, CSV / GeoJSON import, export, unknown beacons heard)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from mallfence.auth.deps import VenueAccess
from mallfence.deps import RuntimeDep, SessionDep, write_venue
from mallfence.errors import Invalid, Issue, PayloadTooLarge
from mallfence.venues import beacon_service as svc
from mallfence.venues import service as venue_service
from mallfence.venues.beacon_schemas import BeaconImportSummary, BeaconIn, BeaconOut, BeaconUpdate, UnknownBeacon

router = APIRouter(prefix="/v1/venues/{slug}/beacons", tags=["beacons"], dependencies=[VenueAccess])
MAX_IMPORT_BYTES = 10 * 1024 * 1024
_IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}, "example": "key,lon,lat,level,power_1m,zone\n"
                 "ibeacon:7b1e4f0c-5a2d-4c8e-9f3b-2d6a8e1c0b54:10:1,10.1581,56.1243,0,-59,L0-COR\n"},
    "application/geo+json": {"schema": {"type": "object", "description": "FeatureCollection of Point features"}},
    "application/json": {"schema": {"type": "object", "description": "FeatureCollection of Point features"}},
}}}


@router.post("", status_code=201, response_model=BeaconOut)
def create_beacon(slug: str, body: BeaconIn, rt: RuntimeDep) -> BeaconOut:
    return write_venue(rt, slug, lambda s, v: svc.beacon_out(svc.create_beacon(s, venue=v, data=body)))


@router.get("", response_model=list[BeaconOut])
def list_beacons(slug: str, s: SessionDep, level: int | None = None, zone_id: int | None = None,
                 active: bool | None = None) -> list[BeaconOut]:
    venue = venue_service.get_venue(s, slug=slug)
    return [svc.beacon_out(b) for b in svc.list_beacons(s, venue=venue, level=level, zone_id=zone_id, active=active)]


@router.post("/import", response_model=BeaconImportSummary, openapi_extra=_IMPORT_BODY)
async def import_beacons(
    slug: str, request: Request, rt: RuntimeDep,
    prune: Annotated[bool, Query(description="delete beacons that are not in the file")] = False,
) -> BeaconImportSummary:
    """CSV (``text/csv``) or a GeoJSON FeatureCollection of points; upsert by identity, all or nothing."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_IMPORT_BYTES:
            raise PayloadTooLarge(f"import larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB: split it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(Issue(("body",), f"not UTF-8 text (byte {exc.start})")) from None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("text/csv", "application/csv"):
        rows, source = svc.rows_from_csv(text), "csv"
    elif ctype in ("application/json", "application/geo+json"):
        try:
            parsed: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Invalid(Issue(("body",), f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")) from None
        rows, source = svc.rows_from_geojson(parsed), "features"
    else:
        raise Invalid(Issue(("content-type",), f"send text/csv or application/geo+json, not {ctype or 'nothing'!r}"))
    return write_venue(rt, slug, lambda s, v: svc.import_beacons(s, venue=v, rows=rows, source=source, prune=prune))


@router.get("/export")
def export_beacons(slug: str, s: SessionDep) -> dict[str, Any]:
    venue = venue_service.get_venue(s, slug=slug)
    return svc.export_beacons(svc.list_beacons(s, venue=venue), venue=venue)


@router.get("/unknown", response_model=list[UnknownBeacon])
def unknown_beacons(slug: str, s: SessionDep, rt: RuntimeDep,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[UnknownBeacon]:
    """Beacons apps heard that this venue has not registered (this process, since it started), most first:
    a missing registration, a replaced battery with a new identity, or a neighbour's beacons."""
    venue = venue_service.get_venue(s, slug=slug)
    return rt.unknown_beacons.top(venue.id, limit)


@router.get("/{beacon_id}", response_model=BeaconOut)
def get_beacon(slug: str, beacon_id: int, s: SessionDep) -> BeaconOut:
    return svc.beacon_out(svc.get_beacon(s, venue=venue_service.get_venue(s, slug=slug), beacon_id=beacon_id))


@router.patch("/{beacon_id}", response_model=BeaconOut)
def update_beacon(slug: str, beacon_id: int, body: BeaconUpdate, rt: RuntimeDep) -> BeaconOut:
    def change(s, v):
        beacon = svc.get_beacon(s, venue=v, beacon_id=beacon_id)
        return svc.beacon_out(svc.update_beacon(s, venue=v, beacon=beacon, data=body))
    return write_venue(rt, slug, change)


@router.delete("/{beacon_id}", status_code=204)
def delete_beacon(slug: str, beacon_id: int, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete_beacon(s, beacon=svc.get_beacon(s, venue=v, beacon_id=beacon_id)))
    return Response(status_code=204)
