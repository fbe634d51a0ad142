"""Operator API: QR codes (CRUD, import, printable image) and the venue's signing keys."""

from __future__ import annotations

import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from mallfence.auth.deps import VenueAccess
from mallfence.db import transaction
from mallfence.deps import RuntimeDep, SessionDep, write_venue
from mallfence.errors import Invalid, Issue
from mallfence.venues import qr_service as svc
from mallfence.venues import service as venue_service
from mallfence.venues import signing
from mallfence.venues.qr_schemas import (
    QrCodeIn,
    QrCodeOut,
    QrCodeUpdate,
    QrFile,
    QrImportSummary,
    SigningKeyCreated,
    SigningKeyOut,
)

router = APIRouter(prefix="/v1/venues/{slug}", tags=["qr codes"], dependencies=[VenueAccess])
Purpose = Literal["qr", "identity", "commerce"]


@router.post("/qr-codes", status_code=201, response_model=QrCodeOut)
def create_code(slug: str, body: QrCodeIn, rt: RuntimeDep) -> QrCodeOut:
    return write_venue(rt, slug, lambda s, v: svc.code_out(s, venue=v, code=svc.create_code(s, venue=v, data=body)),
                       rebuild=False)  # codes are looked up when scanned, not kept in the snapshot


@router.get("/qr-codes", response_model=list[QrCodeOut])
def list_codes(slug: str, rt: RuntimeDep) -> list[QrCodeOut]:
    with transaction(rt.sessions) as s:  # the first payload of a venue creates its signing key
        venue = venue_service.get_venue(s, slug=slug)
        return [svc.code_out(s, venue=venue, code=c) for c in svc.list_codes(s, venue=venue)]


@router.post("/qr-codes/import", response_model=QrImportSummary)
def import_codes(slug: str, body: QrFile, rt: RuntimeDep) -> QrImportSummary:
    """The ``zones/*-qr.json`` format: codes bound by zone external ids; upsert by code, all or nothing."""
    if body.venue is not None and body.venue != slug:
        raise Invalid(Issue(("venue",), f"the file is for venue {body.venue!r}, not {slug!r}"))
    return write_venue(rt, slug, lambda s, v: svc.import_codes(s, venue=v, codes=body.codes), rebuild=False)


@router.get("/qr-codes/{code}", response_model=QrCodeOut)
def get_code(slug: str, code: str, rt: RuntimeDep) -> QrCodeOut:
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        return svc.code_out(s, venue=venue, code=svc.get_code(s, venue=venue, code=code))


@router.get("/qr-codes/{code}/image", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}})
def code_image(slug: str, code: str, rt: RuntimeDep,
               format: Annotated[Literal["svg", "png"], Query()] = "svg",
               scale: Annotated[int, Query(ge=1, le=40, description="pixels per module")] = 8) -> Response:
    """The code to print (error correction M: survives a smudge or a scuffed corner)."""
    import segno  # only this endpoint draws QR codes

    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        text, _ = svc.payload(s, venue=venue, code=svc.get_code(s, venue=venue, code=code))
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind=format, scale=scale, border=4)
    return Response(out.getvalue(), media_type="image/svg+xml" if format == "svg" else "image/png")


@router.patch("/qr-codes/{code}", response_model=QrCodeOut)
def update_code(slug: str, code: str, body: QrCodeUpdate, rt: RuntimeDep) -> QrCodeOut:
    def change(s, v):
        row = svc.update_code(s, venue=v, code=svc.get_code(s, venue=v, code=code), data=body)
        return svc.code_out(s, venue=v, code=row)
    return write_venue(rt, slug, change, rebuild=False)


@router.delete("/qr-codes/{code}", status_code=204)
def delete_code(slug: str, code: str, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete_code(s, code=svc.get_code(s, venue=v, code=code)), rebuild=False)
    return Response(status_code=204)


# -- signing keys -------------------------------------------------------------------------------------
def _key_out(keys: list, key) -> SigningKeyOut:  # type: ignore[no-untyped-def]
    newest = next((k for k in keys if k.purpose == key.purpose and k.retired_at is None), None)
    return SigningKeyOut(purpose=key.purpose, kid=key.kid, created_at=key.created_at, retired_at=key.retired_at,
                         signing=newest is key)


@router.get("/signing-keys", response_model=list[SigningKeyOut], tags=["signing keys"])
def list_keys(slug: str, s: SessionDep) -> list[SigningKeyOut]:
    """Key ids and dates only: secrets never leave the server."""
    keys = signing.list_keys(s, venue=venue_service.get_venue(s, slug=slug))
    return [_key_out(keys, k) for k in keys]


@router.post("/signing-keys/{purpose}", status_code=201, response_model=SigningKeyCreated, tags=["signing keys"])
def rotate_key(slug: str, purpose: Purpose, rt: RuntimeDep) -> SigningKeyCreated:
    """A new key signs from now on; codes signed with older keys keep working until those are retired.
    A ``commerce`` key is the one your POS / ERP signs its webhooks with: its ``secret`` is in this answer
    only (qr and identity secrets never leave the server)."""
    def change(s, v):
        key = signing.rotate(s, venue=v, purpose=purpose)
        out = _key_out(signing.list_keys(s, venue=v), key)
        return SigningKeyCreated(**out.model_dump(), secret=key.secret if purpose in signing.SHOWN_ONCE else None)
    return write_venue(rt, slug, change, rebuild=False)


@router.delete("/signing-keys/{purpose}/{kid}", response_model=SigningKeyOut, tags=["signing keys"])
def retire_key(slug: str, purpose: Purpose, kid: str, rt: RuntimeDep) -> SigningKeyOut:
    """Refuse from now on everything ``kid`` signed (a leaked key; or every code reprinted)."""
    def change(s, v):
        key = signing.retire(s, venue=v, purpose=purpose, kid=kid)
        return _key_out(signing.list_keys(s, venue=v), key)
    return write_venue(rt, slug, change, rebuild=False)
