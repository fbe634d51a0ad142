"""Products, stock per store, wishlists, click-and-collect orders, purchases, and inbound webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mallfence.db import Base, UTCDateTime, utcnow
from mallfence.devices.models import Shopper
from mallfence.venues.models import Store

STOCK_LEVELS = ("in_stock", "low", "out")
ORDER_STATUSES = ("placed", "ready", "collected", "cancelled")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Product(Base):
    """A catalog entry of a venue, keyed by the SKU its stores' systems use."""

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("venue_id", "sku"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(100))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StockLevel(Base):
    """How many of one product one store holds. ``level`` is derived from quantity and threshold on every
    write, so "where is it in stock" filters on a column instead of recomputing per row."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("store_id", "product_id"),
        CheckConstraint(_one_of("level", STOCK_LEVELS), name="level"),
        CheckConstraint("quantity >= 0", name="quantity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    low_threshold: Mapped[int] = mapped_column(Integer)  # at or below this (and above 0): "low"
    level: Mapped[str] = mapped_column(String(8))  # in_stock | low | out
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # last change of the quantity

    product: Mapped[Product] = relationship(lazy="joined")


class WishlistItem(Base):
    """A product a shopper saved in the app (any of their devices)."""

    __tablename__ = "wishlist_items"
    __table_args__ = (UniqueConstraint("shopper_id", "product_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product: Mapped[Product] = relationship(lazy="joined")


class Order(Base):
    """A click-and-collect order: placed → ready → collected, or cancelled before collection.

    Times are the server's: ``arrived_at`` is when mallfence saw the shopper enter the pickup zone while
    the order was ready, so ``wait_s`` (collected - arrived) compares two readings of one clock.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("venue_id", "external_id"),
        CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
        Index("ix_orders_shopper_id_status", "shopper_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(128))  # the commerce system's order number
    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    pickup_zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{sku, qty, name?}] as sent
    ready_by: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the promise made to the shopper
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_s: Mapped[float | None] = mapped_column(Float)  # collected_at - arrived_at
    collected_by: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    store: Mapped[Store] = relationship(lazy="joined")
    shopper: Mapped[Shopper] = relationship(lazy="joined")


class Purchase(Base):
    """A sale the POS reported for a known shopper. Amounts in minor units of ``currency`` (cents, øre),
    exact on both backends; ``external_id`` makes a resent purchase a no-op."""

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("venue_id", "external_id"),
        Index("ix_purchases_shopper_id_purchased_at", "shopper_id", "purchased_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(128))
    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"))
    # A closed store keeps its sales in the shopper's history.
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{sku, qty, price_minor}]
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundDelivery(Base):
    """A signed webhook we accepted, by the sender's delivery id: a resend gets the first answer back
    instead of being applied twice. Written in the transaction that applied it."""

    __tablename__ = "inbound_deliveries"
    __table_args__ = (UniqueConstraint("venue_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(16))  # inventory | orders | purchases
    body_sha256: Mapped[str] = mapped_column(String(64))  # a reused id with another body is refused
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
