"""Shopper identity codes: short-lived, single-scan codes the app shows and staff scan.

Code: ``mfid1.<venue slug>.<nonce>.<kid>.<signature>``, signed with the venue's ``identity`` key. The
code carries no personal data (the nonce points at a row that names the device), the signature lets a
forged or damaged code be refused without a lookup, and the row makes it scan once cluster-wide: a
scan claims it with ``UPDATE ... WHERE used_at IS NULL``, which exactly one transaction wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from mallfence.devices.models import Device
from mallfence.errors import Forbidden, Gone, Invalid, Issue
from mallfence.staff.models import IdentityCode, StaffMember
from mallfence.venues import signing
from mallfence.venues.models import Store, Venue

PREFIX = "mfid1"
REFRESH_SHARE = 0.75  # the app fetches a new code when this share of its life is gone: never shows a dead one


@dataclass(frozen=True, slots=True)
class Issued:
    code: str
    expires_at: datetime
    refresh_after_s: float


def issue(session: Session, *, device: Device, venue: Venue, ttl_s: float, store_id: int | None = None) -> Issued:
    """A fresh code for ``device``; ``store_id`` limits it to that store's staff."""
    if store_id is not None:
        store = session.get(Store, store_id)
        if store is None or store.venue_id != venue.id:
            raise Invalid(Issue(("store_id",), f"store {store_id} does not exist in venue {venue.slug!r}"))
    key = signing.signing_key(session, venue=venue, purpose="identity")
    nonce = secrets.token_urlsafe(12)
    now = datetime.now(UTC)
    row = IdentityCode(nonce=nonce, venue_id=venue.id, device_id=device.id, store_id=store_id, issued_at=now,
                       expires_at=now + timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    body = f"{PREFIX}.{venue.slug}.{nonce}.{key.kid}"
    return Issued(f"{body}.{signing.mac(key.secret, body)}", row.expires_at, ttl_s * REFRESH_SHARE)


def _refuse(kind: str, message: str) -> Invalid:
    return Invalid(Issue(("code",), message, f"identity.{kind}"))


def redeem(session: Session, *, staff: StaffMember, venue: Venue, text: str) -> IdentityCode:
    """Claim a scanned code for ``staff``: the row (now used), or the precise reason it is refused."""
    parts = text.strip().split(".")
    if parts[0] != PREFIX:
        raise _refuse("malformed", f"not a shopper identity code (expected it to start with {PREFIX!r}); a "
                                   "printed QR code is scanned in the shopper app, not by staff")
    if len(parts) != 5 or len(parts[4]) != signing.SIGNATURE_CHARS:
        raise _refuse("truncated", "the code is truncated or damaged: scan it again")
    _, slug, nonce, kid, signature = parts
    if slug != venue.slug:
        raise Forbidden(f"this shopper's code is for venue {slug!r}; you work at {venue.slug!r}")
    key = signing.verifying_key(session, venue_id=venue.id, purpose="identity", kid=kid)
    if key is None or not signing.matches(key.secret, text.strip().rsplit(".", 1)[0], signature):
        raise _refuse("forged", "the code's signature does not match: it was altered or not issued here")
    row = session.get(IdentityCode, nonce)
    now = datetime.now(UTC)
    if row is None or row.venue_id != venue.id:
        raise Gone("this code is unknown or expired long ago: ask the shopper to open their code again")
    if row.store_id is not None and row.store_id != staff.store_id:
        raise Forbidden(f"this code was shown for store {row.store_id}; you work at store {staff.store_id}")
    if row.used_at is not None:
        raise Gone(f"this code was already scanned at {row.used_at.isoformat(timespec='seconds')}: ask the shopper "
                   "to show a fresh one")
    if row.expires_at <= now:
        raise Gone(f"this code expired {(now - row.expires_at).total_seconds():.0f} s ago: ask the shopper to "
                   "show a fresh one")
    claimed = session.execute(update(IdentityCode).where(IdentityCode.nonce == nonce, IdentityCode.used_at.is_(None))
                              .values(used_at=now, used_by=staff.id))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Gone("this code was scanned by someone else a moment ago: ask the shopper to show a fresh one")
    session.refresh(row)
    return row


def purge_expired(session: Session, *, older_than_s: float = 3600.0) -> int:
    """Delete codes expired for a while (used ones included: the scan itself is an event)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    result = session.execute(delete(IdentityCode).where(IdentityCode.expires_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
