"""Signed webhooks in from the venue's POS / ERP / commerce system: stock changes, orders, purchases.

Each request is checked before its body is even parsed (``commerce.inbound``: 401 for a missing, wrong or
stale signature), then applied in one transaction with the record of its ``Mallfence-Delivery`` id, so a
resend answers what the first delivery answered and a refused one leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mallfence.commerce import inbound, listeners, orders, purchases
from mallfence.commerce import service as svc
from mallfence.commerce.router import read_capped
from mallfence.commerce.schemas import (
    InventoryApplied,
    InventoryFeed,
    OrderIn,
    OrderWritten,
    PurchaseIn,
    PurchaseRecorded,
)
from mallfence.db import transaction
from mallfence.errors import Invalid, Issue
from mallfence.runtime import Runtime
from mallfence.venues import service as venue_service
from mallfence.venues.models import Venue

router = APIRouter(prefix="/v1/venues/{slug}/inbound", tags=["commerce webhooks in"])
MAX_BODY_BYTES = 2 * 1024 * 1024
After = list[Callable[[], object]]
Apply = Callable[[Session, Venue, Any, After], tuple[int, BaseModel]]


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its definitions inlined: the body is read raw (the signature covers the
    bytes), so FastAPI does not list the model among the OpenAPI components a $ref could point at."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


def _signed(model: type[BaseModel]) -> dict[str, Any]:
    return {"parameters": [
        {"name": inbound.TIMESTAMP, "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Unix seconds when the request was signed; more than 5 minutes off is refused"},
        {"name": inbound.SIGNATURE, "in": "header", "required": True, "schema": {"type": "string"},
         "description": "v1=<hex HMAC-SHA256(commerce key secret, '{timestamp}.{raw body}')>"},
        {"name": inbound.DELIVERY, "in": "header", "required": False, "schema": {"type": "string"},
         "description": "your id of this delivery: a resend of it is answered, not applied again"},
    ], "requestBody": {"required": True, "content": {"application/json": {"schema": _inline(model)}}}}


def _parse(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid([Issue(("body", *e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]) \
            from None


def _receive(rt: Runtime, slug: str, topic: str, headers: dict[str, str], raw: bytes, model: type[BaseModel],
             apply: Apply) -> JSONResponse:
    delivery_id = inbound.check_delivery_id(headers.get(inbound.DELIVERY.lower()))
    digest = inbound.body_hash(raw)
    after: After = []
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        inbound.verify(s, venue=venue, timestamp=headers.get(inbound.TIMESTAMP.lower()),
                       signature=headers.get(inbound.SIGNATURE.lower()), body=raw)
        if delivery_id is not None:
            first = inbound.earlier(s, venue=venue, delivery_id=delivery_id, body_sha256=digest)
            if first is not None:
                return JSONResponse(first.response, status_code=first.status_code, headers={"Mallfence-Replayed": "1"})
        status, answer = apply(s, venue, _parse(model, raw), after)
        body = answer.model_dump(mode="json")
        if delivery_id is not None:
            inbound.remember(s, venue=venue, delivery_id=delivery_id, topic=topic, body_sha256=digest,
                             status_code=status, response=body)
    for step in after:  # committed: follow-up work that must not undo it
        step()
    return JSONResponse(body, status_code=status)


async def _handle(request: Request, slug: str, topic: str, model: type[BaseModel], apply: Apply) -> JSONResponse:
    raw = await read_capped(request, MAX_BODY_BYTES)
    rt: Runtime = request.app.state.runtime
    return await run_in_threadpool(_receive, rt, slug, topic, dict(request.headers), raw, model, apply)


@router.post("/inventory", response_model=InventoryApplied, openapi_extra=_signed(InventoryFeed))
async def inventory(slug: str, request: Request) -> JSONResponse:
    """Stock changes in order: ``delta`` (a sale -1, a restock +24) or ``quantity`` (a count) per store and
    SKU. An unknown store or SKU anywhere is a 422 naming each, and nothing is applied."""
    return await _handle(request, slug, "inventory", InventoryFeed,
                         lambda s, v, feed, _: (200, svc.apply_changes(s, venue=v, changes=feed.changes)))


def _purchase(s: Session, venue: Venue, data: PurchaseIn, _: After) -> tuple[int, BaseModel]:
    purchase, duplicate = purchases.record(s, venue=venue, data=data)
    return (200 if duplicate else 201), PurchaseRecorded(**purchases.purchase_out(purchase).model_dump(),
                                                         duplicate=duplicate)


@router.post("/purchases", response_model=PurchaseRecorded, status_code=201, openapi_extra=_signed(PurchaseIn),
             responses={200: {"model": PurchaseRecorded, "description": "already stored (duplicate: true)"}})
async def purchase(slug: str, request: Request) -> JSONResponse:
    """A sale to a known shopper (``shopper_id`` or ``loyalty_id``): 201, or 200 with ``duplicate: true``
    when this ``external_id`` was already stored."""
    return await _handle(request, slug, "purchases", PurchaseIn, _purchase)


@router.post("/orders", response_model=OrderWritten, status_code=201, openapi_extra=_signed(OrderIn),
             responses={200: {"model": OrderWritten, "description": "updated"}})
async def order(slug: str, request: Request) -> JSONResponse:
    """An order as the commerce system knows it now (created 201, updated 200); status steps as in
    ``POST /v1/venues/{slug}/orders``."""
    rt: Runtime = request.app.state.runtime

    def apply(s: Session, venue: Venue, data: OrderIn, after: After) -> tuple[int, BaseModel]:
        prior = orders.status_of(s, venue=venue, external_id=data.external_id)
        written, created, changed = orders.upsert(s, venue=venue, data=data)
        if written.status == "ready" and prior != "ready":
            order_id = written.id
            after.append(lambda: listeners.arrive_if_present(rt, order_id=order_id))
        return (201 if created else 200), OrderWritten(**orders.order_out(s, written).model_dump(), created=created,
                                                       changed=changed)

    return await _handle(request, slug, "orders", OrderIn, apply)
