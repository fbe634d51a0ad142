"""Operator API for webhook endpoints: register, change, rotate the secret, see deliveries, send a ping."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallfence.auth.deps import VenueAccess
from mallfence.db import transaction
from mallfence.delivery import webhook_schemas as schemas
from mallfence.delivery import webhooks
from mallfence.delivery.models import WebhookDelivery, WebhookEndpoint
from mallfence.deps import RuntimeDep, SessionDep
from mallfence.errors import Conflict, NotFound
from mallfence.venues import service as venue_service
from mallfence.venues.models import Venue

router = APIRouter(prefix="/v1/venues/{slug}/webhooks", tags=["webhooks"], dependencies=[VenueAccess])

MAX_ENDPOINTS_PER_VENUE = 20  # every event is written once per endpoint: keep the fan-out bounded
Status = Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")]


def _endpoint(session: Session, venue: Venue, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.venue_id != venue.id:
        raise NotFound(f"webhook endpoint {endpoint_id} not found in venue {venue.slug!r}")
    return endpoint


def _pending(session: Session, endpoint_ids: list[int]) -> dict[int, int]:
    return dict(session.execute(
        select(WebhookDelivery.endpoint_id, func.count()).where(WebhookDelivery.endpoint_id.in_(endpoint_ids),
                                                                WebhookDelivery.status == "pending")
        .group_by(WebhookDelivery.endpoint_id)).all())


def _out(endpoint: WebhookEndpoint, pending: int, secret: str | None = None) -> schemas.EndpointOut:
    return schemas.EndpointOut(id=endpoint.id, url=endpoint.url, event_types=endpoint.event_types,
                               description=endpoint.description, active=endpoint.active,
                               created_at=endpoint.created_at, pending=pending, secret=secret)


def _delivery_out(d: WebhookDelivery) -> schemas.DeliveryOut:
    return schemas.DeliveryOut(
        id=d.id, event_id=str(d.payload.get("id", "")), event_type=d.event_type, status=d.status, attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None, last_status_code=d.last_status_code,
        last_error=d.last_error, created_at=d.created_at, delivered_at=d.delivered_at, payload=d.payload)


@router.post("", status_code=201, response_model=schemas.EndpointOut)
def create_endpoint(slug: str, body: schemas.EndpointIn, rt: RuntimeDep) -> schemas.EndpointOut:
    """Register an endpoint. The answer holds its signing ``secret``: store it, it is not shown again."""
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        count = s.scalar(select(func.count()).select_from(WebhookEndpoint)
                         .where(WebhookEndpoint.venue_id == venue.id)) or 0
        if count >= MAX_ENDPOINTS_PER_VENUE:
            raise Conflict(f"venue {slug!r} already has {count} webhook endpoints (the limit)")
        secret = webhooks.new_secret()
        endpoint = WebhookEndpoint(venue_id=venue.id, url=body.url, secret=secret, event_types=body.event_types,
                                   description=body.description, active=body.active)
        s.add(endpoint)
        s.flush()
        out = _out(endpoint, 0, secret)
    webhooks.forget_venue(venue.id)  # after the commit, so the next event's query finds it
    return out


@router.get("", response_model=list[schemas.EndpointOut])
def list_endpoints(slug: str, s: SessionDep) -> list[schemas.EndpointOut]:
    venue = venue_service.get_venue(s, slug=slug)
    endpoints = list(s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.venue_id == venue.id)
                               .order_by(WebhookEndpoint.id)))
    pending = _pending(s, [e.id for e in endpoints])
    return [_out(e, pending.get(e.id, 0)) for e in endpoints]


@router.get("/{endpoint_id}", response_model=schemas.EndpointOut)
def get_endpoint(slug: str, endpoint_id: int, s: SessionDep) -> schemas.EndpointOut:
    endpoint = _endpoint(s, venue_service.get_venue(s, slug=slug), endpoint_id)
    return _out(endpoint, _pending(s, [endpoint.id]).get(endpoint.id, 0))


@router.patch("/{endpoint_id}", response_model=schemas.EndpointOut)
def update_endpoint(slug: str, endpoint_id: int, body: schemas.EndpointPatch, rt: RuntimeDep) -> schemas.EndpointOut:
    """Change what is given. ``rotate_secret: true`` answers with the new secret, used from the next try on."""
    with transaction(rt.sessions) as s:
        endpoint = _endpoint(s, venue_service.get_venue(s, slug=slug), endpoint_id)
        given = body.model_fields_set
        if body.url is not None:
            endpoint.url = body.url
        if body.event_types is not None:
            endpoint.event_types = body.event_types
        if "description" in given:
            endpoint.description = body.description
        if body.active is not None:
            endpoint.active = body.active
        secret = None
        if body.rotate_secret:
            secret = endpoint.secret = webhooks.new_secret()
        s.flush()
        out = _out(endpoint, _pending(s, [endpoint.id]).get(endpoint.id, 0), secret)
    if endpoint.active:
        webhooks.forget_venue(endpoint.venue_id)
        webhooks.wake_dispatchers()  # (re)activated: its waiting deliveries may go now
    return out


@router.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(slug: str, endpoint_id: int, rt: RuntimeDep) -> Response:
    """Remove the endpoint and its deliveries (sent or not)."""
    with transaction(rt.sessions) as s:
        s.delete(_endpoint(s, venue_service.get_venue(s, slug=slug), endpoint_id))
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=list[schemas.DeliveryOut])
def list_deliveries(
    slug: str, endpoint_id: int, s: SessionDep, status: Status = None,
    before_id: Annotated[int | None, Query(ge=1, description="page backwards: ids below this")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.DeliveryOut]:
    """Newest first: status, attempts, the last HTTP status and error of each delivery."""
    endpoint = _endpoint(s, venue_service.get_venue(s, slug=slug), endpoint_id)
    q = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
         .order_by(WebhookDelivery.id.desc()).limit(limit))
    if status is not None:
        q = q.where(WebhookDelivery.status == status)
    if before_id is not None:
        q = q.where(WebhookDelivery.id < before_id)
    return [_delivery_out(d) for d in s.scalars(q)]


@router.post("/{endpoint_id}/test", status_code=202, response_model=schemas.DeliveryOut)
def send_test(slug: str, endpoint_id: int, rt: RuntimeDep) -> schemas.DeliveryOut:
    """Queue a ``ping`` event to this endpoint (whatever it subscribes to); see it in its deliveries."""
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        endpoint = _endpoint(s, venue, endpoint_id)
        if not endpoint.active:
            raise Conflict(f"webhook endpoint {endpoint_id} is inactive: activate it to send a ping")
        now = datetime.now(UTC)
        ping = WebhookDelivery(endpoint_id=endpoint.id, event_type="ping", status="pending", attempts=0,
                               next_attempt_at=now, created_at=now, payload=webhooks.envelope(
                                   f"ping_{secrets.token_hex(8)}", "ping", venue.slug, {"endpoint_id": endpoint.id}))
        s.add(ping)
        s.flush()
        out = _delivery_out(ping)
    webhooks.wake_dispatchers()
    return out
