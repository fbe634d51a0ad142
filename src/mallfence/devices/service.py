"""App installs: registration and device-token checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from sqlalchemy.orm import Session

from mallfence.devices.models import Device
from mallfence.devices.schemas import DeviceRegister
from mallfence.errors import NotFound, Unauthorized
from mallfence.venues.models import Venue


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register(session: Session, *, venue: Venue, data: DeviceRegister) -> tuple[Device, str]:
    """A new device and its bearer token (only the token's hash is stored)."""
    token = secrets.token_urlsafe(32)
    device = Device(id=str(uuid.uuid4()), venue_id=venue.id, token_hash=_hash(token), platform=data.platform,
                    app_version=data.app_version, locale=data.locale)
    session.add(device)
    session.flush()
    return device, token


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
