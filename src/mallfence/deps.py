"""FastAPI dependencies shared by routers: the runtime, sessions, the calling device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Path
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from mallfence import logs
from mallfence.db import transaction
from mallfence.devices import service as device_service
from mallfence.devices.models import Device
from mallfence.runtime import Runtime
from mallfence.venues import service as venue_service
from mallfence.venues.models import Venue

T = TypeVar("T")


def get_runtime(conn: HTTPConnection) -> Runtime:
    return conn.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    """A read-only session for the request (writes go through ``write_venue``)."""
    with rt.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def current_device(
    rt: RuntimeDep,
    device_id: Annotated[str, Path(max_length=64)],
    authorization: Annotated[str | None, Header()] = None,
) -> Device:
    with rt.sessions() as session:
        device = device_service.authenticate(session, device_id=device_id, token=bearer_token(authorization))
    logs.bind(device_id=device.id)
    rt.rate.device.take(device.id, "device")
    return device


CurrentDevice = Annotated[Device, Depends(current_device)]


def write_venue(rt: Runtime, slug: str, change: Callable[[Session, Venue], T], *, rebuild: bool = True) -> T:
    """Run ``change`` in one transaction, then (if it touched zones or levels) rebuild the venue's index everywhere."""
    with transaction(rt.sessions) as session:
        venue = venue_service.get_venue(session, slug=slug)
        venue_id = venue.id
        result = change(session, venue)
    if rebuild:
        rt.snapshots.rebuild(venue_id)
    return result
