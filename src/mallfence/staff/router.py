"""Staff: accounts (operator side), scanning a shopper's code for the customer card, the store alert stream;
and the app side of it, fetching the shopper's identity code."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from mallfence import metrics
from mallfence.auth import service as auth_service
from mallfence.auth.deps import StaffSession, VenueAccess
from mallfence.commerce import orders as commerce_orders
from mallfence.commerce.schemas import DB_ID_MAX, OrderOut
from mallfence.db import transaction
from mallfence.deps import CurrentDevice, RuntimeDep, SessionDep, bearer_token, write_venue
from mallfence.devices.models import Device
from mallfence.errors import DomainError, Unauthorized
from mallfence.runtime import Runtime
from mallfence.staff import cards, identity
from mallfence.staff import service as svc
from mallfence.staff.models import StaffMember
from mallfence.staff.schemas import (
    CustomerCard,
    IdentityCodeIn,
    IdentityCodeOut,
    StaffCreated,
    StaffIn,
    StaffOut,
    StaffScanIn,
    StaffScanOut,
    StaffUpdate,
)
from mallfence.tracking import checks as tracking_checks
from mallfence.tracking import service as tracking
from mallfence.tracking.models import Event
from mallfence.venues import service as venue_service
from mallfence.venues.models import Store, Venue

operators = APIRouter(prefix="/v1/venues/{slug}/staff", tags=["staff accounts"], dependencies=[VenueAccess])
staff = APIRouter(prefix="/v1/staff", tags=["staff"])
devices = APIRouter(prefix="/v1/devices", tags=["staff"])

CLOSE_BAD_TOKEN = 4401


def store_channel(store_id: int) -> str:
    """The hub key staff websockets of one store listen on (device ids are UUIDs: no clash)."""
    return f"store:{store_id}"


def alert_store(rt: Runtime, store_id: int, kind: str, **fields: Any) -> None:
    """Push an alert to every open staff websocket of the store, on any replica."""
    rt.hub.publish(store_channel(store_id), [{"type": "alert", "kind": kind, "at": datetime.now(UTC).isoformat(),
                                              **fields}])


# -- operators: accounts ------------------------------------------------------------------------------
@operators.post("", status_code=201, response_model=StaffCreated)
def create_staff(slug: str, body: StaffIn, rt: RuntimeDep) -> StaffCreated:
    def change(s, v):
        member, token = svc.create(s, venue=v, data=body)
        return StaffCreated(**svc.staff_out(member, venue_slug=v.slug).model_dump(), token=token)
    return write_venue(rt, slug, change, rebuild=False)


@operators.get("", response_model=list[StaffOut])
def list_staff(slug: str, s: SessionDep, store_id: int | None = None) -> list[StaffOut]:
    venue = venue_service.get_venue(s, slug=slug)
    return [svc.staff_out(m, venue_slug=slug) for m in svc.list_staff(s, venue=venue, store_id=store_id)]


@operators.get("/{staff_id}", response_model=StaffOut)
def get_staff(slug: str, staff_id: int, s: SessionDep) -> StaffOut:
    return svc.staff_out(svc.get(s, venue=venue_service.get_venue(s, slug=slug), staff_id=staff_id), venue_slug=slug)


@operators.patch("/{staff_id}", response_model=StaffOut)
def update_staff(slug: str, staff_id: int, body: StaffUpdate, rt: RuntimeDep) -> StaffOut:
    def change(s, v):
        member = svc.update_member(s, venue=v, member=svc.get(s, venue=v, staff_id=staff_id), data=body)
        return svc.staff_out(member, venue_slug=v.slug)
    return write_venue(rt, slug, change, rebuild=False)


@operators.post("/{staff_id}/token", response_model=StaffCreated)
def new_staff_token(slug: str, staff_id: int, rt: RuntimeDep) -> StaffCreated:
    """A new token for a lost or shared phone; the old one stops working at once."""
    def change(s, v):
        member = svc.get(s, venue=v, staff_id=staff_id)
        token = svc.new_token(s, member=member)
        return StaffCreated(**svc.staff_out(member, venue_slug=v.slug).model_dump(), token=token)
    return write_venue(rt, slug, change, rebuild=False)


@operators.delete("/{staff_id}", status_code=204)
def delete_staff(slug: str, staff_id: int, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete(s, member=svc.get(s, venue=v, staff_id=staff_id)), rebuild=False)
    return Response(status_code=204)


# -- staff: who am I, scan a shopper ------------------------------------------------------------------
def current_staff(caller: StaffSession, rt: RuntimeDep) -> StaffMember:
    """The staff member of the session (a session token from POST /v1/staff/login)."""
    with rt.sessions() as session:
        member = session.get(StaffMember, caller.id)
        if member is None:
            raise Unauthorized("staff account removed: log in again")
        return member


CurrentStaff = Annotated[StaffMember, Depends(current_staff)]


@staff.get("/me", response_model=StaffOut)
def me(member: CurrentStaff, s: SessionDep) -> StaffOut:
    venue = s.get(Venue, member.venue_id)
    assert venue is not None
    return svc.staff_out(member, venue_slug=venue.slug)


@staff.post("/scans", response_model=CustomerCard)
def scan_shopper(body: StaffScanIn, member: CurrentStaff, rt: RuntimeDep) -> CustomerCard:
    """Scan a shopper's identity code: the code is used up, the scan is stored as a ``staff_scan`` event
    (the shopper is in this store now), the store's other staff get an alert, and this is the card."""
    with transaction(rt.sessions) as s:
        venue = s.get(Venue, member.venue_id)
        assert venue is not None
        code = identity.redeem(s, staff=member, venue=venue, text=body.code)
        device_id = code.device_id
    with rt.sessions() as s:
        device = s.get(Device, device_id)
        store = s.get(Store, member.store_id)
        assert device is not None and store is not None
        zone = store.zone
        point = zone.area.point_on_surface() if zone is not None else None
        level = zone.level.ordinal if zone is not None and zone.level is not None else None
    now = datetime.now(UTC)
    kept = point if tracking_checks.location_consent(device) is True else None  # stored like any position
    scan = Event(venue_id=venue.id, device_id=device.id, zone_id=zone.id if zone else None, kind="staff_scan",
                 occurred_at=now, source="staff", fix_id=f"staff:{member.id}",
                 lon=kept.x if kept else None, lat=kept.y if kept else None,
                 accuracy_m=tracking.GROUND_TRUTH_ACCURACY_M, floor=level,
                 data={"staff_id": member.id, "staff_name": member.name, "store_id": store.id,
                       "store_name": store.name})
    events = tracking.pin(rt, device=device, zone_id=zone.id if zone else None,
                          point=(point.x, point.y) if point else None, level=level, at=None, source="staff", scan=scan,
                          floor_hint_s=rt.settings.floor_hint_qr_s)
    scan_event = next(e for e in events if e.kind == "staff_scan")
    with rt.sessions() as s:
        card = cards.build(s, rt, device=s.get(Device, device.id), venue=s.get(Venue, venue.id),  # type: ignore[arg-type]
                           store=store, scan_id=scan_event.id, scanned_at=scan_event.at)
    alert_store(rt, store.id, "shopper_identified", scan_id=scan_event.id, staff_id=member.id, staff_name=member.name,
                shopper={"id": card.shopper.id, "display_name": card.shopper.display_name,
                         "loyalty_id": card.shopper.loyalty_id})
    return card


@staff.get("/scans", response_model=list[StaffScanOut])
def recent_scans(member: CurrentStaff, s: SessionDep,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[StaffScanOut]:
    """The store's latest scans (by any of its staff), newest first."""
    store = s.get(Store, member.store_id)
    q = (select(Event, Device.shopper_id).join(Device, Device.id == Event.device_id)
         .where(Event.venue_id == member.venue_id, Event.kind == "staff_scan").order_by(Event.id.desc()))
    if store is not None and store.zone_id is not None:  # scans are placed in the store's zone: use its index
        q = q.where(Event.zone_id == store.zone_id)
    out = []
    for ev, shopper_id in s.execute(q.limit(1000)).all():
        data = ev.data or {}
        if data.get("store_id") == member.store_id:
            out.append(StaffScanOut(id=ev.id, at=ev.occurred_at, staff_id=data.get("staff_id"),
                                    staff_name=data.get("staff_name"), shopper_id=shopper_id, device_id=ev.device_id))
            if len(out) == limit:
                break
    return out


@staff.post("/orders/{order_id}/collect", response_model=OrderOut)
def collect_order(order_id: Annotated[int, Path(ge=1, le=DB_ID_MAX)], member: CurrentStaff,
                  rt: RuntimeDep) -> OrderOut:
    """Hand a ready click-and-collect order over: only after staff of its store scanned the shopper's identity
    code (``POST /v1/staff/scans``) in the last 10 minutes; 409 saying what is missing otherwise."""
    with transaction(rt.sessions) as s:
        order, scan_id = commerce_orders.collect(s, staff=member, order_id=order_id)
        out = commerce_orders.order_out(s, order)
    alert_store(rt, out.store.id, "order_collected", order_id=out.id, external_id=out.external_id,
                staff_id=member.id, staff_name=member.name, scan_id=scan_id, wait_s=out.wait_s)
    return out


def _authenticate(rt: Runtime, token: str | None) -> tuple[StaffMember, str]:
    if not token:
        raise Unauthorized("missing staff session: ?token=<session from POST /v1/staff/login>")
    with rt.sessions() as session:
        caller = auth_service.staff(session, token=token, secret_key=rt.settings.secret_key.get_secret_value())
        member = session.get(StaffMember, caller.id)
        venue = session.get(Venue, caller.venue_ids and next(iter(caller.venue_ids)))
        if member is None:
            raise Unauthorized("staff account removed")
        return member, venue.slug if venue else ""


@staff.websocket("/stream")
async def staff_stream(websocket: WebSocket, token: str | None = None) -> None:
    """Store alerts for staff apps: ``hello``, then ``alert`` messages (a colleague identified a shopper;
    later, click-and-collect arrivals). The app may send ``{"type": "ping"}``."""
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        member, slug = await run_in_threadpool(
            _authenticate, rt, token or bearer_token(websocket.headers.get("authorization")))
    except DomainError as exc:
        await websocket.close(CLOSE_BAD_TOKEN, exc.message[:120])
        return
    channel = store_channel(member.store_id)
    queue = rt.hub.subscribe(channel)
    sender = asyncio.create_task(_send_loop(websocket, queue))
    metrics.WEBSOCKETS.labels("staff").inc()
    try:
        queue.put_nowait({"type": "hello", "staff_id": member.id, "store_id": member.store_id, "venue": slug})
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                kind = json.loads(message.get("text") or "").get("type")
            except (ValueError, AttributeError):
                kind = None
            queue.put_nowait({"type": "pong"} if kind == "ping" else
                             {"type": "error", "code": "invalid_message", "detail": "staff apps send only pings"})
    except WebSocketDisconnect:
        pass
    finally:
        metrics.WEBSOCKETS.labels("staff").dec()
        rt.hub.unsubscribe(channel, queue)
        sender.cancel()


async def _send_loop(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        message = await queue.get()
        try:
            await websocket.send_json(message)
        except (WebSocketDisconnect, RuntimeError):
            return


# -- the app: its shopper's identity code -------------------------------------------------------------
@devices.post("/{device_id}/identity-codes", status_code=201, response_model=IdentityCodeOut)
def identity_code(device: CurrentDevice, rt: RuntimeDep,
                  body: IdentityCodeIn | None = None) -> IdentityCodeOut:
    """A fresh single-scan code to show as a QR code; valid ``identity_code_ttl_s`` (default 60 s)."""
    store_id = body.store_id if body is not None else None
    with transaction(rt.sessions) as s:
        venue = s.get(Venue, device.venue_id)
        assert venue is not None
        issued = identity.issue(s, device=device, venue=venue, ttl_s=rt.settings.identity_code_ttl_s,
                                store_id=store_id)
    return IdentityCodeOut(code=issued.code, expires_at=issued.expires_at, refresh_after_s=issued.refresh_after_s,
                           store_id=store_id)
