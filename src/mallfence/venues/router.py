"""Operator API: venues, levels, zones, stores, GeoJSON import/export, IMDF import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from mallfence.auth.deps import AnyOperator, PlatformAdmin, VenueAccess, VenueAdmin, VenueAdminOrCreator, VenueReader
from mallfence.db import transaction
from mallfence.deps import RuntimeDep, SessionDep, write_venue
from mallfence.venues import geojson, imdf_archive, imdf_import, schemas
from mallfence.venues import service as svc

router = APIRouter(prefix="/v1/venues", tags=["venues"])
venue = APIRouter(prefix="/v1/venues/{slug}", tags=["venues"], dependencies=[VenueAccess])
NO_CONTENT = Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("", status_code=201, response_model=schemas.VenueOut)
def create_venue(body: schemas.VenueCreate, rt: RuntimeDep, _: PlatformAdmin) -> schemas.VenueOut:
    with transaction(rt.sessions) as s:
        venue = svc.create_venue(s, data=body)
        out = svc.venue_out(s, venue=venue)
    rt.snapshots.rebuild(venue.id)
    return out


@router.get("", response_model=list[schemas.VenueOut])
def list_venues(s: SessionDep, caller: AnyOperator) -> list[schemas.VenueOut]:
    """The venues this key may see."""
    return [svc.venue_out(s, venue=v) for v in svc.list_venues(s) if caller.sees(v.id)]


@router.get("/{slug}", response_model=schemas.VenueOut)
def get_venue(slug: str, s: SessionDep, _: VenueReader) -> schemas.VenueOut:
    return svc.venue_out(s, venue=svc.get_venue(s, slug=slug))


@router.patch("/{slug}", response_model=schemas.VenueOut)
def update_venue(slug: str, body: schemas.VenueUpdate, rt: RuntimeDep, _: VenueAdmin) -> schemas.VenueOut:
    return write_venue(rt, slug, lambda s, v: svc.venue_out(s, venue=svc.update_venue(s, venue=v, data=body)))


@router.delete("/{slug}", status_code=204)
def delete_venue(slug: str, rt: RuntimeDep, _: PlatformAdmin) -> Response:
    """Everything of the venue goes: a platform admin's decision, not a venue admin's."""
    write_venue(rt, slug, lambda s, v: svc.delete_venue(s, venue=v))
    return NO_CONTENT


# -- levels -------------------------------------------------------------------------------------
@venue.post("/levels", status_code=201, response_model=schemas.LevelOut)
def create_level(slug: str, body: schemas.LevelIn, rt: RuntimeDep) -> schemas.LevelOut:
    return write_venue(rt, slug, lambda s, v: schemas.LevelOut.model_validate(svc.create_level(s, venue=v, data=body)))


@venue.get("/levels", response_model=list[schemas.LevelOut])
def list_levels(slug: str, s: SessionDep) -> list[schemas.LevelOut]:
    return [schemas.LevelOut.model_validate(lv) for lv in svc.get_venue(s, slug=slug).levels]


@venue.put("/levels/{ordinal}", response_model=schemas.LevelOut)
def update_level(slug: str, ordinal: int, body: schemas.LevelIn, rt: RuntimeDep) -> schemas.LevelOut:
    def change(s, v):
        return schemas.LevelOut.model_validate(svc.update_level(s, level=svc.get_level(s, venue=v, ordinal=ordinal),
                                                                data=body))
    return write_venue(rt, slug, change)


@venue.delete("/levels/{ordinal}", status_code=204)
def delete_level(slug: str, ordinal: int, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete_level(s, level=svc.get_level(s, venue=v, ordinal=ordinal)))
    return NO_CONTENT


# -- zones --------------------------------------------------------------------------------------
@venue.post("/zones", status_code=201, response_model=schemas.ZoneOut)
def create_zone(slug: str, body: schemas.ZoneIn, rt: RuntimeDep) -> schemas.ZoneOut:
    def change(s, v):
        zone = svc.create_zone(s, venue=v, data=body)
        s.refresh(zone)
        return svc.zone_out(zone)
    return write_venue(rt, slug, change)


@venue.get("/zones", response_model=list[schemas.ZoneOut])
def list_zones(
    slug: str, s: SessionDep, level: int | None = None, kind: schemas.ZoneKind | None = None,
    tag: Annotated[str | None, Query(max_length=100)] = None, active: bool | None = None,
) -> list[schemas.ZoneOut]:
    venue = svc.get_venue(s, slug=slug)
    return [svc.zone_out(z) for z in svc.list_zones(s, venue=venue, level=level, kind=kind, tag=tag, active=active)]


@venue.get("/zones/{zone_id}", response_model=schemas.ZoneOut)
def get_zone(slug: str, zone_id: int, s: SessionDep) -> schemas.ZoneOut:
    return svc.zone_out(svc.get_zone(s, venue=svc.get_venue(s, slug=slug), zone_id=zone_id))


@venue.patch("/zones/{zone_id}", response_model=schemas.ZoneOut)
def update_zone(slug: str, zone_id: int, body: schemas.ZoneUpdate, rt: RuntimeDep) -> schemas.ZoneOut:
    def change(s, v):
        zone = svc.update_zone(s, venue=v, zone=svc.get_zone(s, venue=v, zone_id=zone_id), data=body)
        s.refresh(zone)
        return svc.zone_out(zone)
    return write_venue(rt, slug, change)


@venue.delete("/zones/{zone_id}", status_code=204)
def delete_zone(slug: str, zone_id: int, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete_zone(s, zone=svc.get_zone(s, venue=v, zone_id=zone_id)))
    return NO_CONTENT


@venue.post("/import", response_model=schemas.ImportSummary)
def import_zones(
    slug: str, rt: RuntimeDep,
    collection: Annotated[dict[str, Any], Body(description="GeoJSON FeatureCollection (see zones/README.md)")],
    prune: Annotated[bool, Query(description="delete zones whose external_id is not in the file")] = False,
) -> schemas.ImportSummary:
    return write_venue(rt, slug, lambda s, v: geojson.import_collection(s, venue=v, collection=collection,
                                                                         prune=prune))


ZIP_BODY = {"requestBody": {"required": True, "description": "the IMDF archive (.zip) as the raw request body",
                            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/{slug}/import/imdf", response_model=schemas.ImdfImportReport, openapi_extra=ZIP_BODY)
async def import_imdf(
    slug: str, request: Request, rt: RuntimeDep, _: VenueAdminOrCreator,
    timezone: Annotated[str | None, Query(max_length=64, description="IANA timezone; IMDF venues have none. "
                                          "Default for a new venue: guessed from the address country")] = None,
    language: Annotated[str | None, Query(max_length=35, description="which labels name things (default: the "
                                          "manifest's language); all are kept in metadata.names")] = None,
    prune: Annotated[bool, Query(description="delete zones whose external_id is not in the archive")] = False,
) -> schemas.ImdfImportReport:
    """Create or update the venue from an IMDF archive, all or nothing; the report says what happened.
    Updating needs an admin key of the venue; creating one, a platform admin key."""
    body = await imdf_archive.read_upload(request.headers, request.stream())

    def run() -> schemas.ImdfImportReport:
        archive = imdf_archive.read_zip(body)
        with transaction(rt.sessions) as s:
            report = imdf_import.import_archive(s, archive=archive, slug=slug, timezone=timezone, language=language,
                                                prune=prune)
            venue_id = svc.get_venue(s, slug=slug).id
        rt.snapshots.rebuild(venue_id)
        return report

    return await run_in_threadpool(run)


@venue.get("/export")
def export_zones(slug: str, s: SessionDep) -> dict[str, Any]:
    return geojson.export_collection(s, venue=svc.get_venue(s, slug=slug))


# -- stores -------------------------------------------------------------------------------------
@venue.post("/stores", status_code=201, response_model=schemas.StoreRecord)
def create_store(slug: str, body: schemas.StoreIn, rt: RuntimeDep) -> schemas.StoreRecord:
    return write_venue(rt, slug, lambda s, v: svc.store_out(svc.create_store(s, venue=v, data=body)),
                       rebuild=False)


@venue.get("/stores", response_model=list[schemas.StoreRecord])
def list_stores(slug: str, s: SessionDep) -> list[schemas.StoreRecord]:
    return [svc.store_out(st) for st in svc.list_stores(s, venue=svc.get_venue(s, slug=slug))]


@venue.get("/stores/{store_id}", response_model=schemas.StoreRecord)
def get_store(slug: str, store_id: int, s: SessionDep) -> schemas.StoreRecord:
    return svc.store_out(svc.get_store(s, venue=svc.get_venue(s, slug=slug), store_id=store_id))


@venue.patch("/stores/{store_id}", response_model=schemas.StoreRecord)
def update_store(slug: str, store_id: int, body: schemas.StoreUpdate, rt: RuntimeDep) -> schemas.StoreRecord:
    def change(s, v):
        return svc.store_out(svc.update_store(s, venue=v, store=svc.get_store(s, venue=v, store_id=store_id),
                                              data=body))
    return write_venue(rt, slug, change, rebuild=False)


@venue.delete("/stores/{store_id}", status_code=204)
def delete_store(slug: str, store_id: int, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete_store(s, store=svc.get_store(s, venue=v, store_id=store_id)),
                rebuild=False)  # stores are not in the zone index
    return NO_CONTENT
