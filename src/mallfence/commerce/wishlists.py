"""Wishlists: SKUs a shopper saved in the app, shared by all their devices."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mallfence.commerce import lookup
from mallfence.commerce.models import Product, StockLevel, WishlistItem
from mallfence.commerce.schemas import WishlistItemOut
from mallfence.commerce.service import stores_in_stock
from mallfence.devices.models import Device
from mallfence.errors import Invalid, Issue

MAX_ITEMS = 200  # a wishlist, not a catalog; keeps every enter's stock lookup small


def items(session: Session, *, shopper_id: str) -> list[WishlistItem]:
    """The shopper's saved products, newest first."""
    return list(session.scalars(select(WishlistItem).where(WishlistItem.shopper_id == shopper_id)
                                .order_by(WishlistItem.added_at.desc(), WishlistItem.id.desc())).unique())


def add(session: Session, *, device: Device, sku: str) -> tuple[WishlistItem, bool]:
    """Save ``sku`` for the device's shopper; (item, added). Saving it again changes nothing."""
    product = lookup.products(session, venue_id=device.venue_id, skus=[sku]).get(sku)
    if product is None:
        raise Invalid(Issue(("sku",), f"SKU {sku!r} is not in this venue's catalog"))
    item = session.scalar(select(WishlistItem).where(WishlistItem.shopper_id == device.shopper_id,
                                                     WishlistItem.product_id == product.id))
    if item is not None:
        return item, False
    count = session.scalar(select(func.count()).select_from(WishlistItem)
                           .where(WishlistItem.shopper_id == device.shopper_id)) or 0
    if count >= MAX_ITEMS:
        raise Invalid(Issue(("sku",), f"the wishlist already holds {MAX_ITEMS} products, the most it can: remove "
                                      "one first"))
    item = WishlistItem(shopper_id=device.shopper_id, product_id=product.id, product=product)
    session.add(item)
    session.flush()
    return item, True


def remove(session: Session, *, device: Device, sku: str) -> bool:
    """Forget ``sku`` for the device's shopper; whether it was saved."""
    product_ids = select(Product.id).where(Product.venue_id == device.venue_id, Product.sku == sku).scalar_subquery()
    result = session.execute(delete(WishlistItem).where(WishlistItem.shopper_id == device.shopper_id,
                                                        WishlistItem.product_id == product_ids))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def items_out(session: Session, rows: list[WishlistItem]) -> list[WishlistItemOut]:
    counts = stores_in_stock(session, product_ids=[r.product_id for r in rows])
    return [WishlistItemOut(sku=r.product.sku, name=r.product.name, brand=r.product.brand,
                            image_url=r.product.image_url, added_at=r.added_at,
                            stores_in_stock=counts.get(r.product_id, 0)) for r in rows]


def for_card(session: Session, *, shopper_id: str, store_id: int) -> list[dict[str, Any]]:
    """The customer card's wishlist: each saved product with its stock at the scanning staff's store
    (``stock: null``: this store has no record of it)."""
    rows = items(session, shopper_id=shopper_id)
    stock = {s.product_id: s for s in session.scalars(select(StockLevel).where(
        StockLevel.store_id == store_id, StockLevel.product_id.in_([r.product_id for r in rows]))).unique()} \
        if rows else {}
    out = []
    for r in rows:
        here = stock.get(r.product_id)
        out.append({"sku": r.product.sku, "name": r.product.name, "brand": r.product.brand,
                    "image_url": r.product.image_url, "added_at": r.added_at.isoformat(),
                    "stock": {"level": here.level, "quantity": here.quantity,
                              "updated_at": here.updated_at.isoformat()} if here is not None else None})
    return out
