"""Commerce API: the operator's catalog, stock and orders; "where is it in stock"; the app's wishlist."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from mallfence.auth.deps import AppOrOperator, VenueAccess
from mallfence.commerce import listeners, nearby, orders, purchases, stock_csv, wishlists
from mallfence.commerce import service as svc
from mallfence.commerce.models import Order
from mallfence.commerce.schemas import (
    DB_ID_MAX,
    NO_NUL,
    SKU_PATTERN,
    OrderIn,
    OrderOut,
    OrderStatus,
    OrderUpdate,
    OrderWritten,
    ProductIn,
    ProductOut,
    PurchaseOut,
    StockImportSummary,
    StockIn,
    StockLevelName,
    StockOut,
    WhereInStock,
    WishlistItemOut,
)
from mallfence.db import transaction
from mallfence.deps import CurrentDevice, RuntimeDep, SessionDep, write_venue
from mallfence.devices import service as device_service
from mallfence.errors import Invalid, Issue, PayloadTooLarge
from mallfence.runtime import Runtime
from mallfence.venues import service as venue_service

operators = APIRouter(prefix="/v1/venues/{slug}", tags=["commerce"], dependencies=[VenueAccess])
public = APIRouter(prefix="/v1/venues/{slug}", tags=["commerce"], dependencies=[AppOrOperator])
devices = APIRouter(prefix="/v1/devices", tags=["wishlists"])

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]
IdPath = Annotated[int, Path(ge=1, le=DB_ID_MAX)]
MAX_CSV_BYTES = 10 * 1024 * 1024
_CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}, "example":
             "sku,store_id,quantity,low_threshold,name\nTR-2-42,12,7,2,Trail Runner 2 (42)\n"}}}}


async def read_capped(request: Request, limit: int) -> bytes:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"body larger than {limit // 1024} KiB: split it")
    return bytes(raw)


# -- products --------------------------------------------------------------------------------------------
@operators.put("/products/{sku}", response_model=ProductOut,
               responses={201: {"model": ProductOut, "description": "created"}})
def put_product(slug: str, sku: SkuPath, body: ProductIn, rt: RuntimeDep, response: Response) -> ProductOut:
    """Create or replace a catalog entry (201 when new)."""
    product, created = write_venue(rt, slug, lambda s, v: svc.upsert_product(s, venue=v, sku=sku, data=body),
                                   rebuild=False)
    response.status_code = 201 if created else 200
    return svc.product_out(product)


@operators.get("/products", response_model=list[ProductOut])
def list_products(slug: str, s: SessionDep,
                  after: Annotated[str | None, Query(pattern=SKU_PATTERN, description="last SKU seen")] = None,
                  q: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ProductOut]:
    """The catalog by SKU, a page at a time; ``q`` searches names and brands."""
    venue = venue_service.get_venue(s, slug=slug)
    return [svc.product_out(p) for p in svc.list_products(s, venue=venue, after=after, q=q, limit=limit)]


@operators.get("/products/{sku}", response_model=ProductOut)
def get_product(slug: str, sku: SkuPath, s: SessionDep) -> ProductOut:
    return svc.product_out(svc.get_product(s, venue=venue_service.get_venue(s, slug=slug), sku=sku))


@operators.delete("/products/{sku}", status_code=204)
def delete_product(slug: str, sku: SkuPath, rt: RuntimeDep) -> Response:
    """Remove it, its stock rows and every wishlist entry of it."""
    write_venue(rt, slug, lambda s, v: svc.delete_product(s, product=svc.get_product(s, venue=v, sku=sku)),
                rebuild=False)
    return Response(status_code=204)


# -- stock -----------------------------------------------------------------------------------------------
@operators.put("/stores/{store_id}/stock/{sku}", response_model=StockOut)
def put_stock(slug: str, store_id: IdPath, sku: SkuPath, body: StockIn, rt: RuntimeDep) -> StockOut:
    """The store's count of a catalogued SKU now."""
    return write_venue(rt, slug, lambda s, v: svc.stock_out(svc.set_stock(s, venue=v, store_id=store_id, sku=sku,
                                                                          data=body)), rebuild=False)


@operators.get("/stores/{store_id}/stock", response_model=list[StockOut])
def list_stock(slug: str, store_id: IdPath, s: SessionDep, level: StockLevelName | None = None) -> list[StockOut]:
    venue = venue_service.get_venue(s, slug=slug)
    return [svc.stock_out(r) for r in svc.list_store_stock(s, venue=venue, store_id=store_id, level=level)]


@operators.post("/stock/import", response_model=StockImportSummary, openapi_extra=_CSV_BODY)
async def import_stock(slug: str, request: Request, rt: RuntimeDep) -> StockImportSummary:
    """A CSV of stock rows (see ``commerce/stock_csv.py``); all rows or none, every bad row reported."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("text/csv", "application/csv"):
        raise Invalid(Issue(("content-type",), f"send text/csv, not {ctype or 'nothing'!r}"))
    raw = await read_capped(request, MAX_CSV_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(Issue(("body",), f"not UTF-8 text (byte {exc.start})")) from None
    return await run_in_threadpool(write_venue, rt, slug, lambda s, v: stock_csv.import_stock(s, venue=v, text=text),
                                   rebuild=False)


@public.get("/stock", response_model=WhereInStock)
def where_in_stock(slug: str, s: SessionDep, sku: Annotated[str, Query(pattern=SKU_PATTERN)],
                   lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
                   lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
                   floor: Annotated[int | None, Query(ge=-20, le=200)] = None) -> WhereInStock:
    """Where is it in stock now: stores with the SKU in stock or low, nearest first from the shopper's
    position when given (with a walking hint), and the stores that are out of it."""
    venue = venue_service.get_venue(s, slug=slug)
    return nearby.where_in_stock(s, venue=venue, sku=sku, lon=lon, lat=lat, floor=floor)


# -- orders ------------------------------------------------------------------------------------------------
def _fresh(rt: Runtime, order_id: int) -> OrderOut:
    with rt.sessions() as s:
        order = s.get(Order, order_id)
        assert order is not None
        return orders.order_out(s, order)


def write_order(rt: Runtime, slug: str, body: OrderIn) -> OrderWritten:
    """Upsert an order from the operator API. An order that became ready while its shopper already stands at
    the pickup point has arrived then."""
    def change(s, v):  # type: ignore[no-untyped-def]
        prior = orders.status_of(s, venue=v, external_id=body.external_id)
        order, created, changed = orders.upsert(s, venue=v, data=body)
        out = OrderWritten(**orders.order_out(s, order).model_dump(), created=created, changed=changed)
        return out, order.status == "ready" and prior != "ready"
    written, became_ready = write_venue(rt, slug, change, rebuild=False)
    if became_ready and listeners.arrive_if_present(rt, order_id=written.id):
        written = OrderWritten(**_fresh(rt, written.id).model_dump(), created=written.created, changed=True)
    return written


@operators.post("/orders", response_model=OrderWritten,
                responses={201: {"model": OrderWritten, "description": "created"}})
def post_order(slug: str, body: OrderIn, rt: RuntimeDep, response: Response) -> OrderWritten:
    """Create an order (201) or bring it to this state (200), by ``external_id``; a status step the order
    cannot take (back, or skipping ready) is a 409 naming both."""
    written = write_order(rt, slug, body)
    response.status_code = 201 if written.created else 200
    return written


@operators.get("/orders", response_model=list[OrderOut])
def list_orders(slug: str, s: SessionDep, status: OrderStatus | None = None,
                store_id: Annotated[int | None, Query(ge=1, le=DB_ID_MAX)] = None,
                shopper_id: Annotated[str | None, Query(max_length=36, pattern=NO_NUL)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[OrderOut]:
    venue = venue_service.get_venue(s, slug=slug)
    return [orders.order_out(s, o) for o in orders.list_orders(s, venue=venue, status=status, store_id=store_id,
                                                               shopper_id=shopper_id, limit=limit)]


@operators.get("/orders/{order_id}", response_model=OrderOut)
def get_order(slug: str, order_id: IdPath, s: SessionDep) -> OrderOut:
    return orders.order_out(s, orders.get(s, venue=venue_service.get_venue(s, slug=slug), order_id=order_id))


@operators.patch("/orders/{order_id}", response_model=OrderOut)
def patch_order(slug: str, order_id: IdPath, body: OrderUpdate, rt: RuntimeDep) -> OrderOut:
    """Change status (e.g. the store marks it ready), ready_by or the pickup zone."""
    def change(s, v):  # type: ignore[no-untyped-def]
        order = orders.get(s, venue=v, order_id=order_id)
        prior = order.status
        order, _ = orders.update_order(s, venue=v, order=order, data=body)
        return orders.order_out(s, order), order.status == "ready" and prior != "ready"
    out, became_ready = write_venue(rt, slug, change, rebuild=False)
    if became_ready and listeners.arrive_if_present(rt, order_id=order_id):
        out = _fresh(rt, order_id)
    return out


# -- purchases (read; the POS writes them through its webhook) ---------------------------------------------
@operators.get("/shoppers/{shopper_id}/purchases", response_model=list[PurchaseOut])
def shopper_purchases(slug: str, shopper_id: Annotated[str, Path(max_length=36, pattern=NO_NUL)], s: SessionDep,
                      since: datetime | None = None, until: datetime | None = None) -> list[PurchaseOut]:
    """The shopper's purchases with since <= purchased_at < until, oldest first."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Invalid(Issue(("query", name), "give a time with a UTC offset"))
    venue = venue_service.get_venue(s, slug=slug)
    shopper = device_service.get_shopper(s, venue=venue, shopper_id=shopper_id)
    return [purchases.purchase_out(p) for p in purchases.purchases_of(s, shopper_id=shopper.id, since=since,
                                                                        until=until)]


# -- the app: wishlist ---------------------------------------------------------------------------------------
@devices.get("/{device_id}/wishlist", response_model=list[WishlistItemOut])
def get_wishlist(device: CurrentDevice, s: SessionDep) -> list[WishlistItemOut]:
    """The shopper's saved products (from any of their devices), newest first."""
    return wishlists.items_out(s, wishlists.items(s, shopper_id=device.shopper_id))


@devices.put("/{device_id}/wishlist/{sku}", response_model=WishlistItemOut,
             responses={201: {"model": WishlistItemOut, "description": "saved now (200: it already was)"}})
def save_to_wishlist(sku: SkuPath, device: CurrentDevice, rt: RuntimeDep, response: Response) -> WishlistItemOut:
    """Save a product (201; 200 if it already was)."""
    with transaction(rt.sessions) as s:
        item, added = wishlists.add(s, device=device, sku=sku)
        response.status_code = 201 if added else 200
        return wishlists.items_out(s, [item])[0]


@devices.delete("/{device_id}/wishlist/{sku}", status_code=204)
def remove_from_wishlist(sku: SkuPath, device: CurrentDevice, rt: RuntimeDep) -> Response:
    """Forget a product (204 whether or not it was saved: the app may retry)."""
    with transaction(rt.sessions) as s:
        wishlists.remove(s, device=device, sku=sku)
    return Response(status_code=204)
