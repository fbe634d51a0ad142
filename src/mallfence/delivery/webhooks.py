"""Webhooks out: queue venue events for operators' endpoints in the transaction that made them, sign, POST.

At least once and in order per endpoint. A delivery row is written in the transaction of the zone event or
notification status it reports: a rolled-back batch sends nothing, a committed one is never lost.
``WebhookDispatcher`` leases due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), POSTs each endpoint's rows
one after another in id (= event) order on a worker thread of its own, and retries failures with exponential
backoff and jitter. A row never overtakes an earlier one of its endpoint that waits for a retry, so a down
endpoint gets its backlog in order when it is back, while other endpoints go on. Receivers drop repeats by
the payload ``id``, which every retry keeps.

Signature (``Mallfence-Signature: v1=<hex>``): HMAC-SHA256 keyed with the endpoint secret (its UTF-8 bytes)
over ``f"{Mallfence-Timestamp}.{raw body}"``. A receiver recomputes it over the raw bytes it received (before
parsing the JSON), compares in constant time, and rejects a timestamp more than 5 minutes from its own clock
so a captured request cannot be replayed later: ``verify_signature`` does all three.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import weakref
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.delivery.models import Notification, WebhookDelivery, WebhookEndpoint
from mallfence.tracking.listeners import EventBatch
from mallfence.tracking.schemas import EventOut
from mallfence.venues.models import Venue

log = logging.getLogger("mallfence.webhooks")
USER_AGENT = "mallfence-webhooks/0.1"
D = WebhookDelivery


# -- signing --------------------------------------------------------------------------------------
def new_secret() -> str:
    return "whsec_" + secrets.token_hex(32)  # 32 random bytes; the whole string is the HMAC key


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def verify_signature(secret: str, timestamp: str | int, body: bytes | str, header: str, *,
                     tolerance_s: float = 300, now: float | None = None) -> bool:
    """True if ``header`` (``Mallfence-Signature``) signs ``body`` at ``timestamp`` and that is recent."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False  # an old (or far future) timestamp: a replay, even if the signature is right
    expected = sign(secret, ts, body.encode() if isinstance(body, str) else body)
    # Several comma-separated signatures may come one day (overlap while a secret is rotated).
    return any(hmac.compare_digest(expected, part.strip()) for part in header.split(","))


# -- enqueue (in the caller's transaction) --------------------------------------------------------------
def envelope(event_id: str, event_type: str, venue: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "venue": venue, "created_at": datetime.now(UTC).isoformat(),
            "data": data}


# Most venues have no endpoint: remember that briefly so ingest pays no query for it. Only "none" is cached;
# a venue with endpoints is always asked in the caller's transaction, so a deleted endpoint is never used.
NO_ENDPOINTS_TTL_S = 5.0  # an endpoint created on another replica gets events after at most this long
# Per engine (tests run several databases in one process): venue id -> monotonic time it is known empty until.
_no_endpoints: weakref.WeakKeyDictionary[Any, dict[int, float]] = weakref.WeakKeyDictionary()


def forget_venue(venue_id: int) -> None:
    """Its endpoints changed (created, activated): look again from the next event on."""
    for known in list(_no_endpoints.values()):
        known.pop(venue_id, None)


def _subscribers(session: Session, venue_ids: Sequence[int]) -> dict[int, list[tuple[int, list[str]]]]:
    """Active endpoints per venue: one query on the venue_id index, none for venues known to have none."""
    now = time.monotonic()
    empty = _no_endpoints.setdefault(session.get_bind(), {})
    ask = [v for v in venue_ids if empty.get(v, 0.0) < now]
    found: dict[int, list[tuple[int, list[str]]]] = defaultdict(list)
    if not ask:
        return found
    for eid, vid, types in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.venue_id, WebhookEndpoint.event_types)
            .where(WebhookEndpoint.venue_id.in_(ask), WebhookEndpoint.active.is_(True))
            .order_by(WebhookEndpoint.id)):
        found[vid].append((eid, types))
    for vid in ask:
        if vid not in found:
            empty[vid] = now + NO_ENDPOINTS_TTL_S
    return found


def _queue(session: Session, endpoints: Sequence[tuple[int, list[str]]], messages: Sequence[dict[str, Any]]) -> int:
    now = datetime.now(UTC)
    rows = [D(endpoint_id=eid, event_type=m["type"], payload=m, status="pending", attempts=0, next_attempt_at=now,
              created_at=now) for m in messages for eid, types in endpoints if m["type"] in types]
    session.add_all(rows)  # inserted in this order: ids follow the events, which is the delivery order
    return len(rows)


EVENT_TYPE = {"qr_scan": "qr.scanned", "staff_scan": "staff.identified"}  # else zone.<kind>


def enqueue_events(session: Session, *, venue_id: int, venue: str, device_id: str, events: Sequence[EventOut]) -> int:
    """Queue zone.enter/exit/dwell, qr.scanned and staff.identified for the venue's subscribed endpoints;
    returns how many deliveries."""
    if not events:
        return 0
    endpoints = _subscribers(session, [venue_id]).get(venue_id)
    if not endpoints:
        return 0
    return _queue(session, endpoints, [envelope(
        f"evt_{e.id}", EVENT_TYPE.get(e.kind, f"zone.{e.kind}"), venue,
        {"device_id": device_id, "zone": e.zone.model_dump() if e.zone else None, "at": e.at.isoformat(),
         "duration_s": e.duration_s, "reason": e.reason, "source": e.source, "fix_id": e.fix_id,
         **({"scan": e.data} if e.data else {})}) for e in events])


def on_events(batch: EventBatch) -> None:
    """Tracking listener: queue the batch's events for the venue's endpoints (in its transaction)."""
    if enqueue_events(batch.session, venue_id=batch.device.venue_id, venue=batch.snapshot.slug,
                      device_id=batch.device.id, events=batch.events):
        batch.after_commit.append(wake_dispatchers)


def notification_outcomes(notes: Sequence[Notification],
                          before: Mapping[int, tuple[str, datetime | None]]) -> list[tuple[Notification, str]]:
    """What to report after a dispatch pass, from each note's (status, sent_at) before it.

    ``sent`` is the first hand-over to any channel (socket or FCM), so a socket push that falls back to FCM
    is reported once; delivered, failed and expired are reported when the status becomes one of them.
    """
    out = []
    for note in notes:
        status, sent_at = before.get(note.id, (note.status, note.sent_at))
        if sent_at is None and note.sent_at is not None:
            out.append((note, "notification.sent"))
        if note.status != status and note.status in ("delivered", "failed", "expired"):
            out.append((note, f"notification.{note.status}"))
    return out


def enqueue_notification_outcomes(session: Session, outcomes: Sequence[tuple[Notification, str]]) -> int:
    """Queue notification.* events (``(note, type)`` pairs) in the transaction that changed the notes."""
    if not outcomes:
        return 0
    subscribers = _subscribers(session, sorted({n.venue_id for n, _ in outcomes}))
    if not subscribers:
        return 0
    slugs: dict[int, str] = dict(session.execute(select(Venue.id, Venue.slug)
                                                 .where(Venue.id.in_(list(subscribers)))).all())
    count = 0
    for note, event_type in outcomes:
        if note.venue_id in subscribers:
            data = {"notification_id": note.id, "device_id": note.device_id, "status": note.status,
                    "channel": note.channel, "category": note.category, "title": note.title,
                    "attempts": note.attempts, "last_error": note.last_error,
                    "sent_at": note.sent_at.isoformat() if note.sent_at else None,
                    "delivered_at": note.delivered_at.isoformat() if note.delivered_at else None}
            event_id = f"ntf_{note.id}_{event_type.rsplit('.', 1)[1]}"  # each outcome happens once per note
            count += _queue(session, subscribers[note.venue_id],
                            [envelope(event_id, event_type, slugs[note.venue_id], data)])
    return count


# Started dispatchers of this process (webhook_dispatcher registers them): what ``wake_dispatchers`` pokes.
_running: weakref.WeakSet[Any] = weakref.WeakSet()


def wake_dispatchers() -> None:
    """Deliveries were committed: started dispatchers of this process look now instead of at their next poll."""
    for dispatcher in list(_running):
        dispatcher.wake()
