"""App side: register a device."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from sqlalchemy import select

from mallfence.auth import service as auth_service
from mallfence.auth.deps import PerAddress, VenueAccess
from mallfence.db import transaction
from mallfence.deps import CurrentDevice, RuntimeDep, SessionDep, write_venue
from mallfence.devices import service
from mallfence.devices.schemas import ConsentIn, ConsentOut, DeviceRegister, DeviceRegistered, ShopperLink, ShopperOut
from mallfence.venues import service as venue_service
from mallfence.venues.models import Venue

router = APIRouter(prefix="/v1/devices", tags=["devices"])
shoppers = APIRouter(prefix="/v1/venues/{slug}/shoppers", tags=["shoppers"], dependencies=[VenueAccess])


@router.post("", status_code=201, response_model=DeviceRegistered, dependencies=[PerAddress])
def register_device(body: DeviceRegister, rt: RuntimeDep,
                    x_app_key: Annotated[str | None, Header(description="the venue's app key")] = None,
                    ) -> DeviceRegistered:
    """An app install registers with its venue's app key (``X-App-Key``): the only thing that key allows."""
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=body.venue)
        auth_service.check_app_key(venue, x_app_key)
        device, token = service.register(s, venue=venue, data=body)
        return DeviceRegistered(device_id=device.id, token=token, venue=venue.slug)


@router.post("/{device_id}/token", response_model=DeviceRegistered)
def rotate_token(device: CurrentDevice, rt: RuntimeDep) -> DeviceRegistered:
    """A new token for this install (the app rotates it, e.g. on every app update or when it fears the old
    one leaked); the old token stops working at once."""
    with transaction(rt.sessions) as s:
        token = service.rotate_token(s, device=device)
        slug = s.scalar(select(Venue.slug).where(Venue.id == device.venue_id))
    return DeviceRegistered(device_id=device.id, token=token, venue=slug)


@router.put("/{device_id}/consent", response_model=ConsentOut)
def put_consent(body: ConsentIn, device: CurrentDevice, rt: RuntimeDep) -> ConsentOut:
    """Record the shopper's current consent choices, with the time and the version of the text shown."""
    with transaction(rt.sessions) as s:
        return ConsentOut(**service.record_consent(s, device=device, data=body))


@shoppers.put("/link", response_model=ShopperOut)
def link_shopper(slug: str, body: ShopperLink, rt: RuntimeDep) -> ShopperOut:
    """Your app backend: this install belongs to loyalty member ``loyalty_id`` (after the user logged in)."""
    def change(s, v):
        return service.shopper_out(s, shopper=service.link_shopper(s, venue=v, data=body))
    return write_venue(rt, slug, change, rebuild=False)


@shoppers.get("/{shopper_id}", response_model=ShopperOut)
def get_shopper(slug: str, shopper_id: str, s: SessionDep) -> ShopperOut:
    venue = venue_service.get_venue(s, slug=slug)
    return service.shopper_out(s, shopper=service.get_shopper(s, venue=venue, shopper_id=shopper_id))
