"""Staff accounts: created by the operator for one store, authenticated by a bearer token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallfence.errors import Forbidden, Invalid, Issue, NotFound, Unauthorized
from mallfence.staff.models import StaffMember
from mallfence.staff.schemas import StaffIn, StaffOut, StaffUpdate, StoreRef
from mallfence.venues.models import Store, Venue

TOKEN_PREFIX = "mfs_"  # recognisable in a leaked log or a secret scanner
SEEN_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _store(session: Session, venue: Venue, store_id: int) -> Store:
    store = session.get(Store, store_id)
    if store is None or store.venue_id != venue.id:
        raise Invalid(Issue(("store_id",), f"store {store_id} does not exist in venue {venue.slug!r}"))
    return store


def create(session: Session, *, venue: Venue, data: StaffIn) -> tuple[StaffMember, str]:
    """A staff member of one store, and their bearer token (only its hash is stored)."""
    store = _store(session, venue, data.store_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    member = StaffMember(venue_id=venue.id, store_id=store.id, name=data.name, role=data.role,
                         token_hash=_hash(token), active=True)
    session.add(member)
    session.flush()
    session.refresh(member)
    return member, token


def get(session: Session, *, venue: Venue, staff_id: int) -> StaffMember:
    member = session.get(StaffMember, staff_id)
    if member is None or member.venue_id != venue.id:
        raise NotFound(f"staff member {staff_id} not found in venue {venue.slug!r}")
    return member


def list_staff(session: Session, *, venue: Venue, store_id: int | None = None) -> list[StaffMember]:
    q = select(StaffMember).where(StaffMember.venue_id == venue.id)
    if store_id is not None:
        q = q.where(StaffMember.store_id == store_id)
    return list(session.scalars(q.order_by(StaffMember.id)).unique())


def update_member(session: Session, *, venue: Venue, member: StaffMember, data: StaffUpdate) -> StaffMember:
    if data.store_id is not None:
        member.store_id = _store(session, venue, data.store_id).id
    for field in ("name", "role", "active"):
        value = getattr(data, field)
        if value is not None:
            setattr(member, field, value)
    session.flush()
    session.refresh(member)
    return member


def new_token(session: Session, *, member: StaffMember) -> str:
    """Replace the member's token (lost phone); the old one stops working at once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    member.token_hash = _hash(token)
    session.flush()
    return token


def delete(session: Session, *, member: StaffMember) -> None:
    session.delete(member)
    session.flush()


def authenticate(session: Session, *, token: str | None) -> StaffMember:
    """The active staff member holding ``token``; Unauthorized / Forbidden otherwise."""
    if not token:
        raise Unauthorized("missing staff token: send 'Authorization: Bearer <token>'")
    member = session.scalar(select(StaffMember).where(StaffMember.token_hash == _hash(token)))
    if member is None or not hmac.compare_digest(member.token_hash, _hash(token)):
        raise Unauthorized("staff token not recognised")
    if not member.active:
        raise Forbidden("this staff account is switched off")
    now = datetime.now(UTC)
    if member.last_seen_at is None or now - member.last_seen_at > SEEN_EVERY:
        session.execute(update(StaffMember).where(StaffMember.id == member.id).values(last_seen_at=now))
        session.commit()
    return member


def staff_out(member: StaffMember, *, venue_slug: str) -> StaffOut:
    store = member.store
    return StaffOut(id=member.id, venue=venue_slug, store=StoreRef(id=store.id, name=store.name, zone_id=store.zone_id),
                    name=member.name, role=member.role, active=member.active,  # type: ignore[arg-type]
                    created_at=member.created_at, last_seen_at=member.last_seen_at)
