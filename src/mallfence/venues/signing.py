"""Per-venue HMAC keys that sign QR codes and shopper identity codes, and the signing itself.

A venue has keys per purpose; the newest unretired key signs, every unretired key verifies. Rotating
adds a key (codes already printed keep working); retiring a key revokes everything it signed.
Signatures are HMAC-SHA256 truncated to 128 bits, base64url: 22 characters keep a QR code small,
and 2^-128 is far below any forging attempt an API rate limit lets through.

``commerce`` keys are the other way round: the venue's POS / ERP / commerce system signs the webhooks it
sends us (``commerce.inbound``, full HMAC-SHA256 as outbound webhooks), so their secret is shown once
when the key is created, and every unretired one verifies (rotate, move the sender over, retire).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mallfence.errors import NotFound
from mallfence.venues.models import SigningKey, Venue

PURPOSES = ("qr", "identity", "commerce")
SHOWN_ONCE = frozenset({"commerce"})  # purposes whose secret another system needs: returned at creation
SIGNATURE_CHARS = 22  # 16 bytes


def mac(secret: str, message: str) -> str:
    """The truncated HMAC-SHA256 of ``message`` under ``secret``, base64url without padding."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:SIGNATURE_CHARS]


def matches(secret: str, message: str, signature: str) -> bool:
    return hmac.compare_digest(mac(secret, message), signature)


def list_keys(session: Session, *, venue: Venue, purpose: str | None = None) -> list[SigningKey]:
    """The venue's keys, newest first (retired ones included, without use for verifying)."""
    q = select(SigningKey).where(SigningKey.venue_id == venue.id)
    if purpose is not None:
        q = q.where(SigningKey.purpose == purpose)
    return list(session.scalars(q.order_by(SigningKey.purpose, SigningKey.id.desc())))


def signing_key(session: Session, *, venue: Venue, purpose: str) -> SigningKey:
    """The key that signs new codes: the newest unretired one, created on first use."""
    newest = select(SigningKey).where(
        SigningKey.venue_id == venue.id, SigningKey.purpose == purpose, SigningKey.retired_at.is_(None),
    ).order_by(SigningKey.id.desc()).limit(1)
    key = session.scalar(newest)
    if key is not None:
        return key
    try:
        with session.begin_nested():  # two first uses at once: one creates, the other reads it
            return rotate(session, venue=venue, purpose=purpose)
    except IntegrityError:
        key = session.scalar(newest)
        if key is None:
            raise
        return key


def verifying_keys(session: Session, *, venue_id: int, purpose: str) -> list[SigningKey]:
    """Every unretired key of the venue for ``purpose``, newest first (a sender may be mid-rotation)."""
    return list(session.scalars(select(SigningKey).where(
        SigningKey.venue_id == venue_id, SigningKey.purpose == purpose, SigningKey.retired_at.is_(None))
        .order_by(SigningKey.id.desc())))


def verifying_key(session: Session, *, venue_id: int, purpose: str, kid: str) -> SigningKey | None:
    """The unretired key ``kid`` of the venue, or None (never existed, or retired)."""
    return session.scalar(select(SigningKey).where(
        SigningKey.venue_id == venue_id, SigningKey.purpose == purpose, SigningKey.kid == kid,
        SigningKey.retired_at.is_(None)))


def rotate(session: Session, *, venue: Venue, purpose: str) -> SigningKey:
    """A new signing key for ``purpose``; older keys still verify until retired."""
    count = session.scalar(select(func.count(SigningKey.id)).where(
        SigningKey.venue_id == venue.id, SigningKey.purpose == purpose)) or 0
    # A recognisable prefix on secrets that leave the server, for secret scanners and leaked logs.
    prefix = "mfc_" if purpose == "commerce" else ""
    key = SigningKey(venue_id=venue.id, purpose=purpose, kid=f"k{count + 1}",
                     secret=prefix + secrets.token_urlsafe(32))
    session.add(key)
    session.flush()
    return key


def retire(session: Session, *, venue: Venue, purpose: str, kid: str) -> SigningKey:
    """Stop accepting what ``kid`` signed (a leaked key, or after reprinting every code)."""
    key = session.scalar(select(SigningKey).where(
        SigningKey.venue_id == venue.id, SigningKey.purpose == purpose, SigningKey.kid == kid))
    if key is None:
        raise NotFound(f"venue {venue.slug!r} has no {purpose} key {kid!r}")
    if key.retired_at is None:
        key.retired_at = datetime.now(UTC)
        session.flush()
    return key
