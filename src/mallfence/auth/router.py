"""Operator keys (platform admins), who-am-I, staff login, a venue's app key, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from mallfence.auth import service
from mallfence.auth.deps import Caller, PerAddress, PlatformAdmin, VenueAdmin
from mallfence.auth.models import ApiKey, AuditEntry
from mallfence.db import transaction
from mallfence.deps import RuntimeDep, SessionDep
from mallfence.errors import Invalid, Issue
from mallfence.venues import service as venue_service
from mallfence.venues.models import Venue

keys = APIRouter(prefix="/v1/operator-keys", tags=["auth"])
me = APIRouter(prefix="/v1", tags=["auth"])
staff_login = APIRouter(prefix="/v1/staff", tags=["auth"])
venue = APIRouter(prefix="/v1/venues/{slug}", tags=["auth"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="who holds it, e.g. 'harbourside ops'")
    role: Literal["admin", "analyst"] = Field(description="admin changes things, analyst only reads")
    venues: list[str] | None = Field(description="venue slugs it may use; null: every venue (a platform key)")


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    role: str
    venues: list[str] | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown once, store it in your secrets manager")


def _key_out(session, key: ApiKey) -> KeyOut:  # type: ignore[no-untyped-def]
    slugs = None if key.all_venues else list(session.scalars(select(Venue.slug).where(Venue.id.in_(key.venue_ids))))
    return KeyOut(id=key.id, name=key.name, prefix=key.prefix, role=key.role, venues=slugs,
                  created_at=key.created_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at)


@keys.post("", status_code=201, response_model=KeyCreated)
def create_key(body: KeyIn, rt: RuntimeDep, _: PlatformAdmin) -> KeyCreated:
    with transaction(rt.sessions) as s:
        ids = None
        if body.venues is not None:
            found = dict(s.execute(select(Venue.slug, Venue.id).where(Venue.slug.in_(body.venues))).all())
            missing = [v for v in body.venues if v not in found]
            if missing:
                raise Invalid(Issue(("venues",), f"no venue {missing[0]!r}"))
            ids = list(found.values())
        key, secret = service.create_key(s, name=body.name, role=body.role, venue_ids=ids)
        return KeyCreated(**_key_out(s, key).model_dump(), key=secret)


@keys.get("", response_model=list[KeyOut])
def list_keys(s: SessionDep, _: PlatformAdmin) -> list[KeyOut]:
    return [_key_out(s, k) for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]


@keys.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: int, rt: RuntimeDep, _: PlatformAdmin) -> KeyOut:
    """The key stops working at once; it stays listed (revoked) for the audit trail."""
    with transaction(rt.sessions) as s:
        return _key_out(s, service.revoke_key(s, key_id=key_id))


class Me(BaseModel):
    kind: str
    id: int
    name: str
    role: str
    venues: list[str] | None
    store_id: int | None


@me.get("/me", response_model=Me)
def whoami(caller: Caller, s: SessionDep) -> Me:
    """The caller as the server sees it: what the console shows after login."""
    slugs = None if caller.venue_ids is None else list(s.scalars(select(Venue.slug).where(
        Venue.id.in_(caller.venue_ids)).order_by(Venue.slug)))
    return Me(kind=caller.kind, id=caller.id, name=caller.name, role=caller.role, venues=slugs,
              store_id=caller.store_id)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: str = Field(min_length=1, max_length=200, description="the staff member's credential (mfs_…)")


class LoginOut(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer <token>' (or ?token= on the websocket)")
    expires_at: datetime
    staff_id: int
    store_id: int
    role: str


@staff_login.post("/login", response_model=LoginOut, dependencies=[PerAddress])
def login(body: LoginIn, rt: RuntimeDep) -> LoginOut:
    """A shift's session for a staff app: the credential stays on the phone, the session expires."""
    with transaction(rt.sessions) as s:
        token, expires, member = service.staff_login(s, credential=body.credential,
                                                     secret_key=rt.settings.secret_key.get_secret_value(),
                                                     lifetime_s=rt.settings.staff_session_s)
        return LoginOut(token=token, expires_at=expires, staff_id=member.id, store_id=member.store_id,
                        role=member.role)


class AppKey(BaseModel):
    app_key: str = Field(description="built into the venue's app: it lets an install register, nothing else")
    previous: str | None = Field(description="still accepted until the next rotation (apps update slowly)")


@venue.get("/app-key", response_model=AppKey)
def get_app_key(slug: str, rt: RuntimeDep, _: VenueAdmin) -> AppKey:
    with transaction(rt.sessions) as s:  # a venue made before app keys existed gets one now
        v = venue_service.get_venue(s, slug=slug)
        if not v.app_key:
            v.app_key = service.new_app_key()
        return AppKey(app_key=v.app_key, previous=v.app_key_previous)


@venue.post("/app-key", response_model=AppKey)
def rotate_app_key(slug: str, rt: RuntimeDep, _: VenueAdmin) -> AppKey:
    """A new app key; the current one stays accepted until the next rotation."""
    with transaction(rt.sessions) as s:
        v = venue_service.get_venue(s, slug=slug)
        v.app_key_previous, v.app_key = v.app_key, service.new_app_key()
        return AppKey(app_key=v.app_key, previous=v.app_key_previous)


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    status: int
    detail: dict


@venue.get("/audit", response_model=list[AuditOut])
def audit_log(slug: str, s: SessionDep, _: VenueAdmin, before_id: Annotated[int | None, Query(ge=1)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    """Who did what in this venue, newest first."""
    v = venue_service.get_venue(s, slug=slug)
    q = select(AuditEntry).where(AuditEntry.venue_id == v.id)
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    return [AuditOut(id=a.id, at=a.at, actor=a.actor, action=a.action, target=a.target, status=a.status,
                     detail=a.detail) for a in s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit))]
