"""Push tokens (app side) and notifications (operator send, status and history)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from mallfence.auth.deps import VenueAccess
from mallfence.db import transaction
from mallfence.delivery import schemas, service
from mallfence.deps import CurrentDevice, RuntimeDep, SessionDep
from mallfence.venues import service as venue_service

devices = APIRouter(prefix="/v1/devices", tags=["push"])
venues = APIRouter(prefix="/v1/venues/{slug}", tags=["notifications"], dependencies=[VenueAccess])

Status = Annotated[str | None, Query(pattern="^(pending|awaiting_ack|sent|waiting|delivered|expired|failed)$")]


def _token_out(t) -> schemas.PushTokenOut:
    return schemas.PushTokenOut(id=t.id, platform=t.platform, created_at=t.created_at, refreshed_at=t.refreshed_at,
                                invalid_at=t.invalid_at, invalid_reason=t.invalid_reason)


@devices.put("/{device_id}/push-tokens", response_model=schemas.PushTokenOut)
def put_push_token(body: schemas.PushTokenIn, device: CurrentDevice, rt: RuntimeDep) -> schemas.PushTokenOut:
    """Register or refresh this install's FCM token (call on every app start and token refresh)."""
    with transaction(rt.sessions) as s:
        out = _token_out(service.register_token(s, device=device, data=body))
    rt.wake_dispatcher()
    return out


@devices.get("/{device_id}/push-tokens", response_model=list[schemas.PushTokenOut])
def list_push_tokens(device: CurrentDevice, s: SessionDep) -> list[schemas.PushTokenOut]:
    return [_token_out(t) for t in service.list_tokens(s, device=device)]


@devices.delete("/{device_id}/push-tokens/{token_id}", status_code=204)
def delete_push_token(token_id: int, device: CurrentDevice, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as s:
        service.delete_token(s, device=device, token_id=token_id)
    return Response(status_code=204)


@devices.get("/{device_id}/notifications", response_model=list[schemas.NotificationOut])
def device_notifications(
    device: CurrentDevice, s: SessionDep, after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.NotificationOut]:
    return [service.out(s, n) for n in service.listing(s, device_id=device.id, after_id=after_id, limit=limit)]


@venues.post("/notifications", status_code=202, response_model=schemas.SendResult)
def send_notifications(slug: str, body: schemas.NotificationIn, rt: RuntimeDep) -> schemas.SendResult:
    """Queue a push for each target device; delivery happens in the background (see the status)."""
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        if body.zone_id is not None:
            venue_service.get_zone(s, venue=venue, zone_id=body.zone_id)
            targets = rt.states.devices_in_zone(body.zone_id)
        else:
            targets = body.device_ids or []
        result = service.send(s, venue_id=venue.id, data=body, device_ids=targets, request_key=uuid.uuid4().hex)
    rt.wake_dispatcher()
    return result


@venues.get("/notifications", response_model=list[schemas.NotificationOut])
def venue_notifications(
    slug: str, s: SessionDep, status: Status = None, device_id: str | None = None,
    after_id: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.NotificationOut]:
    venue = venue_service.get_venue(s, slug=slug)
    notes = service.listing(s, venue_id=venue.id, device_id=device_id, status=status, after_id=after_id, limit=limit)
    return [service.out(s, n) for n in notes]


@venues.get("/notifications/{notification_id}", response_model=schemas.NotificationOut)
def venue_notification(slug: str, notification_id: int, s: SessionDep) -> schemas.NotificationOut:
    venue = venue_service.get_venue(s, slug=slug)
    return service.out(s, service.get(s, notification_id=notification_id, venue_id=venue.id), history=True)
