"""FastAPI dependencies that say who may call an endpoint. Every route declares one (the matrix test checks).

- ``VenueReader`` / ``VenueAdmin``: an operator key with access to the path's venue (admins write,
  analysts read); ``PlatformAdmin``: a key over every venue (creates venues and keys); ``AnyOperator``.
- ``StaffSession``: a staff member's session token (``POST /v1/staff/login``).
- Devices authenticate with their own token (``deps.CurrentDevice``); a venue's app key only registers.

Credentials come as ``Authorization: Bearer …``; websockets may pass ``?token=`` (browsers cannot set headers
on a websocket). What the caller is goes to ``request.state.principal`` for the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query
from sqlalchemy import select
from starlette.requests import HTTPConnection

from mallfence.auth import service
from mallfence.auth.service import Principal
from mallfence.deps import RuntimeDep, bearer_token
from mallfence.errors import Forbidden, Unauthorized
from mallfence.venues import service as venue_service
from mallfence.venues.models import Venue


def credential(conn: HTTPConnection, authorization: str | None, token: str | None) -> str:
    found = bearer_token(authorization) or token
    if not found:
        raise Unauthorized("missing credentials: send 'Authorization: Bearer <key>'")
    return found


def resolve(rt: RuntimeDep, secret: str) -> Principal:
    """The operator or staff member behind ``secret`` (by its prefix)."""
    with rt.sessions() as session:
        if secret.startswith(service.KEY_PREFIX):
            return service.operator(session, secret)
        if secret.startswith(service.STAFF_PREFIX):
            raise Unauthorized("a staff credential logs in first (POST /v1/staff/login) and then sends the session")
        if secret.count(".") == 2:  # a JWT: a staff session
            return service.staff(session, token=secret, secret_key=rt.settings.secret_key.get_secret_value())
    raise Unauthorized("credentials not recognised")


def _caller(conn: HTTPConnection, rt: RuntimeDep, authorization: Annotated[str | None, Header()] = None,
            token: Annotated[str | None, Query(include_in_schema=False)] = None) -> Principal:
    principal = resolve(rt, credential(conn, authorization, token))
    conn.state.principal = principal
    rt.rate.operator.take(principal.actor, "key" if principal.kind == "operator" else "staff member")
    return principal


def per_address(conn: HTTPConnection, rt: RuntimeDep) -> None:
    """Registering and logging in, limited per client address (cheap for a caller, not for the database)."""
    rt.rate.public.take(conn.client.host if conn.client else "unknown", "address")


PerAddress = Depends(per_address)


Caller = Annotated[Principal, Depends(_caller)]


def any_operator(caller: Caller) -> Principal:
    if caller.kind != "operator":
        raise Forbidden("this needs an operator key")
    return caller


AnyOperator = Annotated[Principal, Depends(any_operator)]


def platform_admin(caller: AnyOperator) -> Principal:
    if not caller.platform:
        raise Forbidden("this needs a platform admin key (admin role over every venue)")
    return caller


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]


def _venue_id(rt: RuntimeDep, slug: str) -> int:
    with rt.sessions() as session:
        return venue_service.get_venue(session, slug=slug).id


def venue_reader(caller: AnyOperator, rt: RuntimeDep, slug: Annotated[str, Path(max_length=64)]) -> Principal:
    if not caller.sees(_venue_id(rt, slug)):
        raise Forbidden(f"this key has no access to venue {slug!r}")
    return caller


def venue_admin(caller: Annotated[Principal, Depends(venue_reader)]) -> Principal:
    if caller.role != "admin":
        raise Forbidden("this key is read-only (analyst): changes need an admin key")
    return caller


VenueReader = Annotated[Principal, Depends(venue_reader)]
VenueAdmin = Annotated[Principal, Depends(venue_admin)]


def venue_access(conn: HTTPConnection, caller: Annotated[Principal, Depends(venue_reader)]) -> Principal:
    """For a whole router of a venue's operator endpoints: reading needs access, changing needs an admin."""
    if conn.scope.get("method", "GET") not in ("GET", "HEAD") and caller.role != "admin":
        raise Forbidden("this key is read-only (analyst): changes need an admin key")
    return caller


VenueAccess = Depends(venue_access)


def staff_session(caller: Caller) -> Principal:
    if caller.kind != "staff":
        raise Forbidden("this is for staff apps: log in with POST /v1/staff/login")
    return caller


StaffSession = Annotated[Principal, Depends(staff_session)]


def app_key(rt: RuntimeDep, slug: Annotated[str, Path(max_length=64)],
            x_app_key: Annotated[str | None, Header()] = None) -> int:
    """The venue's app (its public app key in ``X-App-Key``): the venue id."""
    with rt.sessions() as session:
        venue = venue_service.get_venue(session, slug=slug)
        service.check_app_key(venue, x_app_key)
        return venue.id


def app_or_operator(conn: HTTPConnection, rt: RuntimeDep, slug: Annotated[str, Path(max_length=64)],
                    authorization: Annotated[str | None, Header()] = None,
                    x_app_key: Annotated[str | None, Header()] = None) -> None:
    """Public venue facts for the venue's app (app key) or its operators (a key with access)."""
    if x_app_key is not None and not authorization:
        app_key(rt, slug, x_app_key)
        return
    caller = _caller(conn, rt, authorization)
    if caller.kind != "operator" or not caller.sees(_venue_id(rt, slug)):
        raise Forbidden(f"send the app key of venue {slug!r} (X-App-Key) or an operator key with access to it")


AppOrOperator = Depends(app_or_operator)


def venue_admin_or_creator(caller: AnyOperator, rt: RuntimeDep, slug: Annotated[str, Path(max_length=64)]) -> Principal:
    """An admin of the venue, or, when no venue has this slug yet, a platform admin (who may create it)."""
    with rt.sessions() as session:
        venue_id = session.scalar(select(Venue.id).where(Venue.slug == slug))
    if venue_id is None:
        if not caller.platform:
            raise Forbidden(f"venue {slug!r} does not exist: creating one needs a platform admin key")
    elif not caller.sees(venue_id) or caller.role != "admin":
        raise Forbidden(f"changing venue {slug!r} needs an admin key with access to it")
    return caller


VenueAdminOrCreator = Annotated[Principal, Depends(venue_admin_or_creator)]
