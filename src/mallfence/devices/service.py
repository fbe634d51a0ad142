"""App installs: registration and device-token checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallfence.auth.models import ConsentRecord
from mallfence.devices.models import Device, Shopper
from mallfence.devices.schemas import ConsentIn, DeviceRegister, ShopperLink, ShopperOut
from mallfence.errors import NotFound, Unauthorized
from mallfence.venues.models import Venue


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register(session: Session, *, venue: Venue, data: DeviceRegister) -> tuple[Device, str]:
    """A new device with a shopper of its own, and its bearer token (only the token's hash is stored)."""
    token = secrets.token_urlsafe(32)
    shopper = Shopper(id=str(uuid.uuid4()), venue_id=venue.id)
    session.add(shopper)
    session.flush()
    device = Device(id=str(uuid.uuid4()), venue_id=venue.id, shopper_id=shopper.id, token_hash=_hash(token),
                    platform=data.platform, app_version=data.app_version, locale=data.locale)
    session.add(device)
    session.flush()
    return device, token


def rotate_token(session: Session, *, device: Device) -> str:
    """A new bearer token for ``device``; the old one stops working at once."""
    token = secrets.token_urlsafe(32)
    session.execute(update(Device).where(Device.id == device.id).values(token_hash=_hash(token)))
    return token


def record_consent(session: Session, *, device: Device, data: ConsentIn) -> dict[str, Any]:
    """What the shopper agreed to in the app, with the version of the text they saw and when."""
    now = datetime.now(UTC)
    consent = {**data.model_dump(), "recorded_at": now.isoformat()}
    session.execute(update(Device).where(Device.id == device.id).values(consent=consent))
    # The history, not just the latest choice: when each was given or withdrawn, against which text.
    session.add(ConsentRecord(device_id=device.id, shopper_id=device.shopper_id, location=data.location,
                              marketing=data.marketing, analytics=data.analytics, version=data.version,
                              recorded_at=now))
    return consent


def link_shopper(session: Session, *, venue: Venue, data: ShopperLink) -> Shopper:
    """Move a device to the shopper with ``loyalty_id`` (created if new): the venue's app backend calls this
    once the app's user has logged in, so several installs become one shopper. A shopper left without
    devices keeps its history under its own id."""
    device = session.get(Device, data.device_id)
    if device is None or device.venue_id != venue.id:
        raise NotFound(f"device {data.device_id!r} not found in venue {venue.slug!r}")
    shopper = session.scalar(select(Shopper).where(Shopper.venue_id == venue.id, Shopper.loyalty_id == data.loyalty_id))
    if shopper is None:
        current = device.shopper
        if current.loyalty_id is None:  # an anonymous shopper becomes the loyalty member: history stays with it
            shopper = current
            shopper.loyalty_id = data.loyalty_id
        else:
            shopper = Shopper(id=str(uuid.uuid4()), venue_id=venue.id, loyalty_id=data.loyalty_id)
            session.add(shopper)
    if data.display_name is not None:
        shopper.display_name = data.display_name
    session.flush()
    device.shopper_id = shopper.id
    session.flush()
    return shopper


def get_shopper(session: Session, *, venue: Venue, shopper_id: str) -> Shopper:
    shopper = session.get(Shopper, shopper_id)
    if shopper is None or shopper.venue_id != venue.id:
        raise NotFound(f"shopper {shopper_id!r} not found in venue {venue.slug!r}")
    return shopper


def shopper_out(session: Session, *, shopper: Shopper) -> ShopperOut:
    ids = list(session.scalars(select(Device.id).where(Device.shopper_id == shopper.id).order_by(Device.created_at)))
    return ShopperOut(id=shopper.id, loyalty_id=shopper.loyalty_id, display_name=shopper.display_name, devices=ids)


def authenticate(session: Session, *, device_id: str, token: str | None) -> Device:
    """The device if ``token`` is its token; NotFound / Unauthorized otherwise."""
    if not token:
        raise Unauthorized("missing device token: send 'Authorization: Bearer <token>'")
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"device {device_id!r} not found")
    if not hmac.compare_digest(device.token_hash, _hash(token)):
        raise Unauthorized("device token does not match this device")
    return device
