"""The venue's live view for operators: where shoppers are (a dot per shopper) and zone events as they happen.

Ingest publishes the newest position of each batch and its events to the hub key ``venue:{id}``, on any
replica, but only while some console watches the venue (checked at most once a second), so a venue
nobody watches costs nothing. Shoppers appear under a pseudonym (a hash of the device id): the console
shows movement, not identities.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from mallfence import metrics
from mallfence.auth.deps import resolve
from mallfence.deps import bearer_token
from mallfence.errors import DomainError, Forbidden
from mallfence.runtime import Runtime
from mallfence.tracking.schemas import EventOut, FixIn
from mallfence.venues import service as venue_service

router = APIRouter(prefix="/v1/venues", tags=["live"])
WATCH_CHECK_S = 1.0
# A browser cannot set headers on a websocket, and a ?token= ends up in access logs (uvicorn logs the path
# with its query string). So the console offers two subprotocols, this name and then its key, and the server
# answers with this name: the key travels in a header that nobody logs.
BEARER_PROTOCOL = "mallfence.bearer"
_watched: dict[tuple[int, str], tuple[float, bool]] = {}  # (runtime, key) -> (checked until, watched)


def channel(venue_id: int) -> str:
    return f"venue:{venue_id}"


def pseudonym(device_id: str) -> str:
    return hashlib.sha256(f"mallfence-live:{device_id}".encode()).hexdigest()[:10]


def _watched_now(rt: Runtime, key: str) -> bool:
    now = time.monotonic()
    cached = _watched.get((id(rt), key))
    if cached is not None and cached[0] > now:
        return cached[1]
    watched = rt.hub.connected(key)
    _watched[(id(rt), key)] = (now + WATCH_CHECK_S, watched)
    return watched


def publish(rt: Runtime, *, venue_id: int, device_id: str, fix: FixIn | None, source: str,
            events: list[EventOut]) -> None:
    """Send the batch's newest position and its events to the venue's consoles, if any watch."""
    if fix is None and not events:
        return
    key = channel(venue_id)
    if not _watched_now(rt, key):
        return
    who = pseudonym(device_id)
    messages: list[dict[str, Any]] = []
    if fix is not None:
        messages.append({"type": "position", "shopper": who, "lon": fix.lon, "lat": fix.lat, "floor": fix.floor,
                         "accuracy_m": fix.accuracy_m, "source": source, "at": fix.ts.isoformat()})
    messages += [{"type": "event", "shopper": who, **e.model_dump(mode="json")} for e in events]
    rt.hub.publish(key, messages)


def protocol_token(offered: str | None) -> str | None:
    """The key offered as the subprotocol after ``mallfence.bearer``, if any."""
    protocols = [p.strip() for p in (offered or "").split(",")]
    if BEARER_PROTOCOL not in protocols:
        return None
    at = protocols.index(BEARER_PROTOCOL) + 1
    return protocols[at] if at < len(protocols) else None


@router.websocket("/{slug}/live")
async def live(websocket: WebSocket, slug: str, token: str | None = None) -> None:
    """Positions (``position``) and zone events (``event``) of the venue's shoppers as they happen.
    Needs an operator key with access to the venue: ``Authorization: Bearer``, or from a browser the
    subprotocols ``mallfence.bearer`` and the key (browsers set no headers on websockets), or ``?token=``."""
    rt: Runtime = websocket.app.state.runtime
    offered = websocket.headers.get("sec-websocket-protocol")
    from_protocol = protocol_token(offered)
    await websocket.accept(subprotocol=BEARER_PROTOCOL if from_protocol else None)
    try:
        secret = from_protocol or token or bearer_token(websocket.headers.get("authorization")) or ""
        caller = await run_in_threadpool(resolve, rt, secret)
        with rt.sessions() as session:
            venue = venue_service.get_venue(session, slug=slug)
            venue_id = venue.id
        if caller.kind != "operator" or not caller.sees(venue_id):
            raise Forbidden(f"this key has no access to venue {slug!r}")
    except DomainError as exc:
        await websocket.close(4404 if exc.status_code == 404 else 4401 if exc.status_code == 401 else 4403,
                              exc.message[:120])
        return
    key = channel(venue_id)
    queue = rt.hub.subscribe(key)
    _watched.pop((id(rt), key), None)  # publish from now on, not after the cached "nobody watches" runs out
    sender = asyncio.create_task(_send(websocket, queue))
    metrics.WEBSOCKETS.labels("live").inc()
    try:
        queue.put_nowait({"type": "hello", "venue": slug})
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") and '"ping"' in message["text"]:
                queue.put_nowait({"type": "pong"})
    except WebSocketDisconnect:
        pass
    finally:
        metrics.WEBSOCKETS.labels("live").dec()
        rt.hub.unsubscribe(key, queue)
        sender.cancel()


async def _send(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        message = await queue.get()
        try:
            await websocket.send_json(message)
        except (WebSocketDisconnect, RuntimeError):
            return
