"""QR codes: definitions bound to a zone, store or shelf; signed payloads; verifying a scan.

Payload: ``mfq1.<venue slug>.<code>.<kid>.<signature>``, the signature an HMAC (``signing``) over
everything before it with the venue's ``qr`` key ``kid``. The payload names the code, not its binding,
so an operator may rebind a printed code; nobody can alter or mint one without the key. Verification
names the exact reason a payload is refused (``Invalid`` with a ``qr.*`` type).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.errors import Conflict, Invalid, Issue, NotFound
from mallfence.spatial.projection import LocalProjection
from mallfence.venues import service as venue_service
from mallfence.venues import signing
from mallfence.venues.models import QrCode, Store, Venue, Zone
from mallfence.venues.qr_schemas import QrCodeIn, QrCodeOut, QrCodeUpdate, QrImportSummary

PREFIX = "mfq1"
MAX_QR_DISTANCE_M = 5_000.0


# -- payloads -------------------------------------------------------------------------------------------
def payload(session: Session, *, venue: Venue, code: QrCode) -> tuple[str, str]:
    """(payload, kid): the text to print for ``code``, signed with the venue's current QR key."""
    key = signing.signing_key(session, venue=venue, purpose="qr")
    body = f"{PREFIX}.{venue.slug}.{code.code}.{key.kid}"
    return f"{body}.{signing.mac(key.secret, body)}", key.kid


def _refuse(kind: str, message: str) -> Invalid:
    return Invalid(Issue(("payload",), message, f"qr.{kind}"))


@dataclass(frozen=True, slots=True)
class ScannedCode:
    """What a verified scan means: where the device is, and what it looked at."""

    code: QrCode
    zone: Zone | None
    store: Store | None
    point: BaseGeometry | None  # WGS84, where the code hangs (or a point inside its zone)
    level: int | None


def verify(session: Session, *, venue: Venue, text: str, at: datetime) -> ScannedCode:
    """The code behind a scanned payload for a device of ``venue``; Invalid with the reason otherwise."""
    text = text.strip()
    parts = text.split(".")
    if parts[0] != PREFIX:
        raise _refuse("malformed", f"not a mallfence QR code (expected it to start with {PREFIX!r})")
    if len(parts) != 5 or len(parts[4]) != signing.SIGNATURE_CHARS:
        raise _refuse("truncated", "the payload is truncated or damaged (expected 5 dot-separated parts and a "
                                   f"{signing.SIGNATURE_CHARS}-character signature): scan it again")
    _, slug, code_id, kid, signature = parts
    if slug != venue.slug:
        raise _refuse("other_venue", f"this code belongs to venue {slug!r}; the app is registered with "
                                     f"{venue.slug!r}")
    key = signing.verifying_key(session, venue_id=venue.id, purpose="qr", kid=kid)
    if key is None:
        raise _refuse("unknown_key", f"signed with key {kid!r}, which venue {slug!r} does not accept (retired "
                                     "or never issued): the code must be reprinted")
    if not signing.matches(key.secret, text.rsplit(".", 1)[0], signature):
        raise _refuse("forged", f"the signature does not match: the code was altered or not issued by {slug!r}")
    code = session.scalar(select(QrCode).where(QrCode.venue_id == venue.id, QrCode.code == code_id))
    if code is None:
        raise _refuse("unknown", f"QR code {code_id!r} no longer exists in venue {slug!r}")
    if not code.active:
        raise _refuse("disabled", f"QR code {code_id!r} is switched off by the venue")
    if code.valid_from is not None and at < code.valid_from:
        raise _refuse("not_yet_valid", f"QR code {code_id!r} is valid from {code.valid_from.isoformat()}")
    if code.valid_until is not None and at >= code.valid_until:
        raise _refuse("expired", f"QR code {code_id!r} expired at {code.valid_until.isoformat()}")
    store = code.store
    zone = code.zone if code.zone is not None else (store.zone if store is not None else None)
    point, level = code.position, code.level.ordinal if code.level is not None else None
    if point is None and zone is not None:
        point = zone.area.point_on_surface()
    if level is None and zone is not None and zone.level is not None:
        level = zone.level.ordinal
    return ScannedCode(code, zone, store, point, level)


# -- definitions ------------------------------------------------------------------------------------------
def get_code(session: Session, *, venue: Venue, code: str) -> QrCode:
    row = session.scalar(select(QrCode).where(QrCode.venue_id == venue.id, QrCode.code == code))
    if row is None:
        raise NotFound(f"QR code {code!r} not found in venue {venue.slug!r}")
    return row


def list_codes(session: Session, *, venue: Venue) -> list[QrCode]:
    return list(session.scalars(select(QrCode).where(QrCode.venue_id == venue.id).order_by(QrCode.id)).unique())


def _bind(session: Session, venue: Venue, zone_id: int | None, store_id: int | None) -> tuple[int | None, int | None]:
    if zone_id is not None:
        zone = session.get(Zone, zone_id)
        if zone is None or zone.venue_id != venue.id:
            raise Invalid(Issue(("zone_id",), f"zone {zone_id} does not exist in venue {venue.slug!r}"))
    if store_id is not None:
        store = session.get(Store, store_id)
        if store is None or store.venue_id != venue.id:
            raise Invalid(Issue(("store_id",), f"store {store_id} does not exist in venue {venue.slug!r}"))
    return zone_id, store_id


def _place(session: Session, venue: Venue, position: tuple[float, float] | None,
           level: int | None) -> tuple[Point | None, int | None]:
    level_id = None
    if level is not None:
        levels = venue_service.levels_by_ordinal(session, venue=venue)
        if level not in levels:
            raise Invalid(Issue(("level",), f"unknown level {level} (levels: {', '.join(map(str, sorted(levels)))})"))
        level_id = levels[level].id
    if position is None:
        return None, level_id
    d = LocalProjection(venue.anchor_lon, venue.anchor_lat).distance_m(*position)
    if not d <= MAX_QR_DISTANCE_M:
        raise Invalid(Issue(("position",), f"position is {d / 1000:.1f} km from the venue anchor: are longitude "
                                           "and latitude swapped?"))
    return Point(*position), level_id


def create_code(session: Session, *, venue: Venue, data: QrCodeIn) -> QrCode:
    code_id = data.code or f"QR-{secrets.token_hex(4).upper()}"
    if session.scalar(select(QrCode.id).where(QrCode.venue_id == venue.id, QrCode.code == code_id)):
        raise Conflict(f"QR code {code_id!r} already exists in venue {venue.slug!r}")
    zone_id, store_id = _bind(session, venue, data.zone_id, data.store_id)
    position, level_id = _place(session, venue, data.position, data.level)
    row = QrCode(venue_id=venue.id, code=code_id, label=data.label, zone_id=zone_id, store_id=store_id,
                 sku=data.sku, position=position, level_id=level_id, valid_from=data.valid_from,
                 valid_until=data.valid_until, active=data.active)
    session.add(row)
    session.flush()
    session.refresh(row)
    return row


def update_code(session: Session, *, venue: Venue, code: QrCode, data: QrCodeUpdate) -> QrCode:
    given = data.model_fields_set
    if data.zone_id is not None or data.store_id is not None:
        code.zone_id, code.store_id = _bind(session, venue, data.zone_id, data.store_id)
        if data.zone_id is not None:
            code.sku = None
    if "sku" in given:
        if data.sku is not None and code.store_id is None:
            raise Invalid(Issue(("sku",), "sku needs the code bound to a store"))
        code.sku = data.sku
    if "position" in given or "level" in given:
        position, level_id = _place(session, venue, data.position if "position" in given else None,
                                    data.level if "level" in given else None)
        if "position" in given:
            code.position = position
        if "level" in given:
            code.level_id = level_id
    for field in ("label", "valid_from", "valid_until"):
        if field in given:
            setattr(code, field, getattr(data, field))
    if code.valid_from is not None and code.valid_until is not None and code.valid_until <= code.valid_from:
        raise Invalid(Issue(("valid_until",), "valid_until must be after valid_from"))
    if data.active is not None:
        code.active = data.active
    session.flush()
    session.refresh(code)
    return code


def delete_code(session: Session, *, code: QrCode) -> None:
    session.delete(code)
    session.flush()


def code_out(session: Session, *, venue: Venue, code: QrCode) -> QrCodeOut:
    text, kid = payload(session, venue=venue, code=code)
    target = "zone" if code.zone_id is not None else ("shelf" if code.sku else "store")
    return QrCodeOut(
        id=code.id, code=code.code, label=code.label, target=target, zone_id=code.zone_id, store_id=code.store_id,
        sku=code.sku, position=(code.position.x, code.position.y) if code.position is not None else None,
        level=code.level.ordinal if code.level is not None else None, valid_from=code.valid_from,
        valid_until=code.valid_until, active=code.active, payload=text, kid=kid,
    )


def import_codes(session: Session, *, venue: Venue, codes: list[dict[str, Any]]) -> QrImportSummary:
    """Upsert codes from the portable file format (bindings by zone external id); all or nothing."""
    zones = {z.external_id: z for z in session.scalars(select(Zone).where(
        Zone.venue_id == venue.id, Zone.external_id.is_not(None))).unique()}
    existing = {c.code: c for c in list_codes(session, venue=venue)}
    issues: list[Issue] = []
    planned: list[tuple[str, QrCodeIn]] = []
    for i, item in enumerate(codes):
        if not isinstance(item, dict):
            issues.append(Issue(("codes", i), "must be an object"))
            continue
        binding = item.get("binding") or {}
        fields = {k: v for k, v in item.items() if k not in ("binding", "external_id")}
        fields["code"] = item.get("code", item.get("external_id"))
        ref = binding.get("zone_external_id") or binding.get("store_external_id") if isinstance(binding, dict) \
            else None
        zone = zones.get(ref) if ref is not None else None
        if zone is None:
            issues.append(Issue(("codes", i, "binding"), f"no zone with external_id {ref!r} in this venue"))
            continue
        if "store_external_id" in binding:
            if zone.store is None:
                issues.append(Issue(("codes", i, "binding"), f"zone {ref!r} has no store"))
                continue
            fields["store_id"], fields["sku"] = zone.store.id, binding.get("sku")
        else:
            fields["zone_id"] = zone.id
        try:
            data = QrCodeIn.model_validate(fields)
        except ValidationError as exc:
            issues += [Issue(("codes", i, *e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]
            continue
        if data.code is None:
            issues.append(Issue(("codes", i, "code"), "every code in a file needs its code (or external_id)"))
            continue
        planned.append((data.code, data))
    if issues:
        raise Invalid(issues)
    created = updated = unchanged = 0
    for code_id, data in planned:
        row = existing.get(code_id)
        if row is None:
            create_code(session, venue=venue, data=data)
            created += 1
            continue
        before = code_out(session, venue=venue, code=row)
        update_code(session, venue=venue, code=row, data=QrCodeUpdate.model_validate(
            data.model_dump(exclude={"code"}, exclude_unset=True)))
        if code_out(session, venue=venue, code=row) == before:
            unchanged += 1
        else:
            updated += 1
    return QrImportSummary(created=created, updated=updated, unchanged=unchanged,
                           codes=len(list_codes(session, venue=venue)))

