"""Signed webhooks in: a venue's POS, ERP or commerce system calls us, signed like our webhooks out.

``Mallfence-Signature: v1=<hex HMAC-SHA256(secret, "{Mallfence-Timestamp}.{raw body}")>`` keyed with one of
the venue's unretired ``commerce`` signing keys (several comma-separated signatures are tried, for a
sender mid-rotation). A timestamp more than ``TOLERANCE_S`` from our clock is refused, so a captured request
cannot be sent again later. ``Mallfence-Delivery`` (optional) names the delivery: a resend of it (the
sender's retry after a timeout) gets the first answer back and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mallfence.commerce.models import InboundDelivery
from mallfence.delivery.webhooks import sign
from mallfence.errors import Conflict, Invalid, Issue, Unauthorized
from mallfence.venues import signing
from mallfence.venues.models import Venue

TOLERANCE_S = 300.0
KEEP_DELIVERIES_S = 7 * 86400.0  # senders retry for a few days at most; a delivery id is remembered this long
TIMESTAMP, SIGNATURE, DELIVERY = "Mallfence-Timestamp", "Mallfence-Signature", "Mallfence-Delivery"


def verify(session: Session, *, venue: Venue, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> None:
    """Unauthorized, saying what is wrong, unless ``signature`` signs ``body`` at a recent ``timestamp``."""
    how = f"sign '{{{TIMESTAMP}}}.{{raw body}}' with HMAC-SHA256 and the venue's commerce key"
    if not signature:
        raise Unauthorized(f"missing {SIGNATURE} header: {how}")
    if not timestamp:
        raise Unauthorized(f"missing {TIMESTAMP} header (Unix seconds when the request was signed)")
    try:
        ts = int(timestamp)
    except ValueError:
        raise Unauthorized(f"{TIMESTAMP} {timestamp[:40]!r} is not Unix seconds") from None
    age = (time.time() if now is None else now) - ts
    if age > TOLERANCE_S:
        raise Unauthorized(f"{TIMESTAMP} is {age:.0f} s old (limit {TOLERANCE_S:.0f} s): a replayed request, or the "
                           "sender's clock is wrong")
    if age < -TOLERANCE_S:
        raise Unauthorized(f"{TIMESTAMP} is {-age:.0f} s in the future (limit {TOLERANCE_S:.0f} s): the sender's "
                           "clock is wrong")
    keys = signing.verifying_keys(session, venue_id=venue.id, purpose="commerce")
    if not keys:
        raise Unauthorized(f"venue {venue.slug!r} has no commerce signing key: create one with "
                           f"POST /v1/venues/{venue.slug}/signing-keys/commerce")
    offered = [part.strip() for part in signature.split(",")]
    for key in keys:
        expected = sign(key.secret, ts, body)
        if any(hmac.compare_digest(expected, part) for part in offered):
            return
    raise Unauthorized(f"{SIGNATURE} does not match: {how} (a retired key no longer verifies)")


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_delivery_id(delivery_id: str | None) -> str | None:
    if delivery_id is None:
        return None
    delivery_id = delivery_id.strip()
    if not 1 <= len(delivery_id) <= 128:
        raise Invalid(Issue(("header", DELIVERY), "a delivery id is 1 to 128 characters"))
    return delivery_id


def earlier(session: Session, *, venue: Venue, delivery_id: str, body_sha256: str) -> InboundDelivery | None:
    """The delivery already accepted under ``delivery_id``, if any; Conflict if that id came with another body."""
    row = session.scalar(select(InboundDelivery).where(InboundDelivery.venue_id == venue.id,
                                                       InboundDelivery.delivery_id == delivery_id))
    if row is not None and row.body_sha256 != body_sha256:
        raise Conflict(f"delivery {delivery_id!r} was already received with a different body: a delivery id names "
                       "one request (use a new id for new content)")
    return row


def remember(session: Session, *, venue: Venue, delivery_id: str, topic: str, body_sha256: str, status_code: int,
             response: dict[str, Any]) -> None:
    """Record the answer, in the transaction that applied the delivery (a resend racing it gets a 409 retry)."""
    session.add(InboundDelivery(venue_id=venue.id, delivery_id=delivery_id, topic=topic, body_sha256=body_sha256,
                                status_code=status_code, response=response))
    session.flush()


def purge(session: Session, *, older_than_s: float = KEEP_DELIVERIES_S) -> int:
    """Forget delivery ids older than senders retry."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    return int(session.execute(delete(InboundDelivery).where(InboundDelivery.received_at < cutoff)).rowcount or 0)  # type: ignore[attr-defined]
