"""Credentials: operator API keys (hashed at rest), staff sessions (short-lived signed tokens), venue app keys.

Every credential says what it is by its prefix, so a leaked string is recognisable in a log or by a
secret scanner, and the server knows which check to run without trying them all:
``mfk_`` operator key, ``mfs_`` staff credential (exchanged at login for a session), ``mfa_`` venue app key.
Staff sessions are JWTs (HS256, the server's secret key) naming the staff member, venue, store and role,
valid for ``staff_session_s``; they stop working at once when the account is switched off, deleted, or its
credential replaced (the token carries a fingerprint of the credential it was issued for).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallfence.auth.models import ApiKey
from mallfence.errors import Forbidden, Invalid, Issue, NotFound, Unauthorized
from mallfence.staff.models import StaffMember
from mallfence.venues.models import Venue

KEY_PREFIX, STAFF_PREFIX, APP_PREFIX = "mfk_", "mfs_", "mfa_"
SEEN_EVERY = timedelta(minutes=1)
Role = Literal["admin", "analyst"]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an operator key, a staff member, or the command line."""

    kind: Literal["operator", "staff", "cli"]
    id: int
    name: str
    role: str
    venue_ids: frozenset[int] | None  # None: every venue (a platform key)
    store_id: int | None = None

    @property
    def actor(self) -> str:
        return f"{'key' if self.kind == 'operator' else self.kind}:{self.id} {self.name}"[:64]

    def sees(self, venue_id: int) -> bool:
        return self.venue_ids is None or venue_id in self.venue_ids

    @property
    def admin(self) -> bool:
        return self.role in ("admin", "manager")

    @property
    def platform(self) -> bool:
        return self.kind == "operator" and self.venue_ids is None and self.role == "admin"


# -- operator keys --------------------------------------------------------------------------------------
def create_key(session: Session, *, name: str, role: Role, venue_ids: list[int] | None) -> tuple[ApiKey, str]:
    """A new key (None venues: a platform key over every venue) and its secret, shown once."""
    if venue_ids is not None:
        known = set(session.scalars(select(Venue.id).where(Venue.id.in_(venue_ids))))
        missing = sorted(set(venue_ids) - known)
        if missing:
            raise Invalid(Issue(("venues",), f"no venue with id {missing[0]}"))
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=secret[:10], key_hash=digest(secret), role=role, all_venues=venue_ids is None,
                 venue_ids=sorted(set(venue_ids or ())))
    session.add(key)
    session.flush()
    return key, secret


def operator(session: Session, secret: str) -> Principal:
    """The operator behind ``secret``; Unauthorized when unknown or revoked."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(secret)))
    if key is None or not hmac.compare_digest(key.key_hash, digest(secret)):
        raise Unauthorized("operator key not recognised")
    if key.revoked_at is not None:
        raise Unauthorized(f"operator key {key.prefix}… was revoked")
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > SEEN_EVERY:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        session.commit()
    return Principal("operator", key.id, key.name, key.role,
                     None if key.all_venues else frozenset(key.venue_ids))


def revoke_key(session: Session, *, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no operator key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.flush()
    return key


# -- staff sessions ---------------------------------------------------------------------------------------
def _fingerprint(token_hash: str) -> str:
    return token_hash[:12]


def staff_login(session: Session, *, credential: str, secret_key: str, lifetime_s: float) -> tuple[str, datetime,
                                                                                                  StaffMember]:
    """Exchange a staff credential for a session token: (token, expiry, member)."""
    member = session.scalar(select(StaffMember).where(StaffMember.token_hash == digest(credential)))
    if member is None:
        raise Unauthorized("staff credential not recognised")
    if not member.active:
        raise Forbidden("this staff account is switched off")
    expires = datetime.now(UTC) + timedelta(seconds=lifetime_s)
    token = jwt.encode({"sub": str(member.id), "venue": member.venue_id, "store": member.store_id,
                        "role": member.role, "fp": _fingerprint(member.token_hash), "exp": expires,
                        "typ": "staff"}, secret_key, algorithm="HS256")
    return token, expires, member


def staff(session: Session, *, token: str, secret_key: str) -> Principal:
    """The staff member of a session token; Unauthorized when expired, forged, or the account changed."""
    try:
        claims = jwt.decode(token, secret_key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("staff session expired: log in again") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("staff session token not valid") from None
    member = session.get(StaffMember, int(claims["sub"])) if str(claims.get("sub", "")).isdigit() else None
    if member is None or claims.get("typ") != "staff" or claims.get("fp") != _fingerprint(member.token_hash):
        raise Unauthorized("staff session no longer valid (account removed or credential replaced): log in again")
    if not member.active:
        raise Forbidden("this staff account is switched off")
    return Principal("staff", member.id, member.name, member.role, frozenset({member.venue_id}), member.store_id)


# -- venue app keys -----------------------------------------------------------------------------------------
def new_app_key() -> str:
    return APP_PREFIX + secrets.token_urlsafe(18)


def check_app_key(venue: Venue, key: str | None) -> None:
    """An app may register with its venue's current key, or the one before it (apps update slowly)."""
    if not key:
        raise Unauthorized("missing the venue's app key: send it as X-App-Key")
    if not any(k and hmac.compare_digest(k, key) for k in (venue.app_key, venue.app_key_previous)):
        raise Unauthorized(f"app key not valid for venue {venue.slug!r}")
