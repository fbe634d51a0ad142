"""App installs registered with a venue, and the shoppers behind them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mallfence.db import Base, UTCDateTime, utcnow


class Shopper(Base):
    """A person as the venue knows them. Every device has one; the venue's app backend may link a
    device to a loyalty account (and so several installs to one shopper)."""

    __tablename__ = "shoppers"
    __table_args__ = (UniqueConstraint("venue_id", "loyalty_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID4, chosen by the server
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    loyalty_id: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID4, chosen by the server
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the bearer token; the token is never stored
    platform: Mapped[str] = mapped_column(String(16))
    app_version: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    # What the shopper agreed to in the app: {"location", "marketing", "analytics": bool, "version": str,
    # "recorded_at": ISO time}; None until the app reports it.
    consent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Push preferences: {"opt_out": ["offers", "wishlist"]}: topics this install wants no pushes about.
    preferences: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    shopper: Mapped[Shopper] = relationship(lazy="joined")
