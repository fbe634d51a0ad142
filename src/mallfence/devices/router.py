"""App side: register a device."""

from __future__ import annotations

from fastapi import APIRouter

from mallfence.db import transaction
from mallfence.deps import RuntimeDep
from mallfence.devices import service
from mallfence.devices.schemas import DeviceRegister, DeviceRegistered
from mallfence.venues import service as venue_service

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.post("", status_code=201, response_model=DeviceRegistered)
def register_device(body: DeviceRegister, rt: RuntimeDep) -> DeviceRegistered:
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=body.venue)
        device, token = service.register(s, venue=venue, data=body)
        return DeviceRegistered(device_id=device.id, token=token, venue=venue.slug)
