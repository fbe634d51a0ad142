"""Fixes in over HTTP batches and a websocket stream; events out on both."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from mallfence import logs, metrics
from mallfence.auth.deps import VenueAccess
from mallfence.db import transaction
from mallfence.delivery import service as delivery_service
from mallfence.deps import CurrentDevice, RuntimeDep, SessionDep, bearer_token
from mallfence.devices import service as device_service
from mallfence.devices.models import Device
from mallfence.errors import DomainError, Invalid, NotFound
from mallfence.runtime import Runtime
from mallfence.tracking import beacon_ingest, scans, service
from mallfence.tracking.schemas import (
    BeaconIngestOut,
    BeaconScansIn,
    EventOut,
    FixIn,
    IngestOut,
    IngestStats,
    PositionsIn,
    QrScanIn,
    QrScanOut,
    WsAck,
    WsBeacons,
    WsClientMessage,
    WsFix,
    WsPing,
    WsQr,
    ws_message,
)
from mallfence.venues import service as venue_service

router = APIRouter(prefix="/v1/devices", tags=["tracking"])
stats = APIRouter(prefix="/v1/venues/{slug}", tags=["tracking"], dependencies=[VenueAccess])

CLOSE_BAD_TOKEN = 4401
CLOSE_UNKNOWN_DEVICE = 4404
_client_message: TypeAdapter[Any] = TypeAdapter(WsClientMessage)


@stats.get("/ingest-stats", response_model=IngestStats)
def ingest_stats(slug: str, s: SessionDep, rt: RuntimeDep) -> IngestStats:
    """What ingest dropped or flagged in this venue, counted by this process since it started: fixes too
    old to replay (``fixes_too_old``), fixes flagged by the spoofing checks (``fixes_flagged_<why>``).
    Behind several replicas each answers for itself; /metrics has the same numbers per process."""
    venue = venue_service.get_venue(s, slug=slug)
    return IngestStats(replica=rt.replica_id, since=rt.started_at, counters=rt.counters.of(venue.id))


@router.post("/{device_id}/positions", response_model=IngestOut)
async def post_positions(body: PositionsIn, device: CurrentDevice, rt: RuntimeDep) -> IngestOut:
    return await _ingest(rt, device, body.fixes)


async def _ingest(rt: Runtime, device: Device, fixes: list[FixIn]) -> IngestOut:
    """Applied by the group-ingest thread with what other devices sent meanwhile (tracking/group.py); in a
    pool thread of its own when the app runs without one."""
    if rt.group is not None:
        return await rt.group.submit(device, fixes)
    return await run_in_threadpool(service.ingest, rt, device=device, fixes=fixes)


@router.post("/{device_id}/beacon-scans", response_model=BeaconIngestOut)
def post_beacon_scans(body: BeaconScansIn, device: CurrentDevice, rt: RuntimeDep) -> BeaconIngestOut:
    """Bluetooth beacon scans (one per second or so): each becomes a fix with ``source=beacon``, the floor
    from the strongest beacons; beacons the venue has not registered are counted, never an error."""
    return beacon_ingest.ingest_beacons(rt, device=device, scans=body.scans)


@router.post("/{device_id}/qr-scans", response_model=QrScanOut)
def post_qr_scan(body: QrScanIn, device: CurrentDevice, rt: RuntimeDep) -> QrScanOut:
    """A QR code the app scanned: verified (422 with a ``qr.*`` type saying why not), stored as a ``qr_scan``
    event, and ground truth: the device is in the code's zone now."""
    return scans.scan_qr(rt, device=device, data=body)


@router.get("/{device_id}/events", response_model=list[EventOut])
def list_events(
    device: CurrentDevice, s: SessionDep,
    after_id: Annotated[int, Query(ge=0, description="only events with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    return service.list_events(s, device=device, after_id=after_id, limit=limit)


def _authenticate(rt: Runtime, device_id: str, token: str | None) -> Device:
    with rt.sessions() as session:
        return device_service.authenticate(session, device_id=device_id, token=token)


def _requeue(rt: Runtime, device_id: str) -> None:
    with transaction(rt.sessions) as session:
        count = delivery_service.requeue_unacked(session, device_id=device_id)
    if count:
        rt.wake_dispatcher()


def _acknowledge(rt: Runtime, device_id: str, ids: list[int]) -> int:
    with transaction(rt.sessions) as session:
        return delivery_service.acknowledge(session, device_id=device_id, ids=ids)


def _problem(exc: ValidationError | DomainError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
    return exc.message


@router.websocket("/{device_id}/stream")
async def stream(websocket: WebSocket, device_id: str, token: str | None = None) -> None:
    """Upstream: fix / fixes / beacons / qr / ping / ack messages. Downstream: hello, receipt, qr_receipt, event,
    notification, pong, acked, error."""
    rt: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        device = await run_in_threadpool(
            _authenticate, rt, device_id, token or bearer_token(websocket.headers.get("authorization"))
        )
    except NotFound as exc:
        await websocket.close(CLOSE_UNKNOWN_DEVICE, exc.message[:120])
        return
    except DomainError as exc:
        await websocket.close(CLOSE_BAD_TOKEN, exc.message[:120])
        return
    logs.bind(device_id=device.id)
    queue = rt.hub.subscribe(device.id)
    sender = asyncio.create_task(_send_loop(websocket, queue))
    metrics.WEBSOCKETS.labels("device").inc()
    try:
        # Every outgoing message goes through the queue, so one task writes to the socket.
        # Whatever the app has not acknowledged goes out again on this connection; requeued before the
        # hello, so an app that got its hello knows the replay is on its way.
        await run_in_threadpool(_requeue, rt, device.id)
        snapshot = rt.snapshots.get(device.venue_id)
        queue.put_nowait(ws_message("hello", device_id=device.id, venue=snapshot.slug if snapshot else None))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            t0 = time.perf_counter()
            reply = await _handle(rt, device, message.get("text"))
            queue.put_nowait(reply)
            metrics.WS_MESSAGE_SECONDS.labels(reply["type"]).observe(time.perf_counter() - t0)
    except WebSocketDisconnect:
        pass
    finally:
        metrics.WEBSOCKETS.labels("device").dec()
        rt.hub.unsubscribe(device.id, queue)
        sender.cancel()


async def _send_loop(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        message = await queue.get()
        try:
            await websocket.send_json(message)
        except (WebSocketDisconnect, RuntimeError):
            return


async def _handle(rt: Runtime, device: Device, text: str | None) -> dict[str, Any]:
    """The reply to one client message; a bad message gets an error reply, never a closed socket."""
    if text is None:
        return ws_message("error", code="expected_text", detail="send JSON text frames, not binary")
    if len(text) > rt.settings.max_ws_message_bytes:
        return ws_message("error", code="too_large", detail=f"a message of {len(text)} bytes is over the "
                          f"{rt.settings.max_ws_message_bytes}-byte limit: send smaller batches")
    try:
        with metrics.timed("parse"):
            message = _client_message.validate_python(json.loads(text))
    except json.JSONDecodeError as exc:
        return ws_message("error", code="invalid_json", detail=f"message is not JSON: {exc.msg} at {exc.pos}")
    except ValidationError as exc:
        return ws_message("error", code="invalid_message", detail=_problem(exc))
    if isinstance(message, WsPing):
        return ws_message("pong")
    wait = rt.rate.device.wait_s(device.id)
    if wait > 0:  # the same bucket as the device's HTTP calls
        return ws_message("error", code="rate_limited", detail="too many messages: slow down",
                          retry_after_s=round(wait, 2))
    if isinstance(message, WsAck):
        count = await run_in_threadpool(_acknowledge, rt, device.id, message.ids)
        return ws_message("acked", ids=message.ids, delivered=count)
    try:
        if isinstance(message, WsBeacons):
            scanned = await run_in_threadpool(beacon_ingest.ingest_beacons, rt, device=device, scans=message.scans)
            return ws_message("receipt", accepted=scanned.accepted, dropped=[d.model_dump() for d in scanned.dropped],
                              no_fix=scanned.no_fix, unknown_beacons=scanned.unknown_beacons,
                              fixes=[f.model_dump() for f in scanned.fixes])
        if isinstance(message, WsQr):
            qr = await run_in_threadpool(scans.scan_qr, rt, device=device,
                                         data=QrScanIn(payload=message.payload, ts=message.ts))
            return ws_message("qr_receipt", target=qr.target.model_dump(), floor=qr.floor)
        result = await _ingest(rt, device, [message] if isinstance(message, WsFix) else message.fixes)
    except Invalid as exc:
        code = exc.issues[0].type if exc.issues and exc.issues[0].type.startswith("qr.") else "invalid_fix"
        return ws_message("error", code=code, detail=_problem(exc))
    except DomainError as exc:  # e.g. 503 while Redis is away: say so, keep the socket
        return ws_message("error", code="unavailable" if exc.status_code == 503 else "rejected", detail=exc.message)
    return ws_message("receipt", accepted=result.accepted, dropped=[d.model_dump() for d in result.dropped])
