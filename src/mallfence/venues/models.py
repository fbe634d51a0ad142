"""Venues, their levels, zones and stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mallfence.db import Base, GeometryType, UTCDateTime, utcnow
from mallfence.presence.defaults import ZONE_KINDS

_KIND_CHECK = "kind IN (" + ", ".join(f"'{k}'" for k in ZONE_KINDS) + ")"


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    anchor_lon: Mapped[float] = mapped_column(Float)
    anchor_lat: Mapped[float] = mapped_column(Float)
    # Log-distance path-loss exponent for beacon ranges: ~2 in open halls, 2.5-3.5 among shelves and walls.
    path_loss_exponent: Mapped[float] = mapped_column(Float, default=2.5, server_default="2.5")
    # The push budget per shopper (engagement.rules.Policy fields); {} means the defaults.
    push_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    # The public key built into the venue's app (auth.service): it only lets an install register.
    app_key: Mapped[str | None] = mapped_column(String(64))
    app_key_previous: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    levels: Mapped[list[Level]] = relationship(
        back_populates="venue", cascade="all, delete-orphan", order_by="Level.ordinal"
    )


class Level(Base):
    __tablename__ = "levels"
    __table_args__ = (UniqueConstraint("venue_id", "ordinal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)  # IMDF: 0 ground, -1 below, 1 first floor
    name: Mapped[str] = mapped_column(String(100))
    short_name: Mapped[str | None] = mapped_column(String(20))

    venue: Mapped[Venue] = relationship(back_populates="levels")


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (
        UniqueConstraint("venue_id", "external_id"),
        CheckConstraint(_KIND_CHECK, name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    level_id: Mapped[int | None] = mapped_column(ForeignKey("levels.id", ondelete="RESTRICT"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    # As authored: Polygon / MultiPolygon, or the centre Point of a circle (radius_m set).
    geometry: Mapped[BaseGeometry] = mapped_column(GeometryType)
    # What the zone covers (the circle as a polygon); what the index and spatial SQL use.
    area: Mapped[BaseGeometry] = mapped_column(GeometryType)
    radius_m: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    presence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    level: Mapped[Level | None] = relationship(lazy="joined")
    store: Mapped[Store | None] = relationship(back_populates="zone", uselist=False, lazy="joined")


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    zone: Mapped[Zone | None] = relationship(back_populates="store")


class Beacon(Base):
    """A Bluetooth beacon surveyed into the venue: identity, position, level and calibrated power."""

    __tablename__ = "beacons"
    __table_args__ = (UniqueConstraint("venue_id", "key"), UniqueConstraint("venue_id", "external_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    level_id: Mapped[int] = mapped_column(ForeignKey("levels.id", ondelete="RESTRICT"), index=True)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"))
    # Canonical identity (spatial.beacon_keys): ibeacon:<uuid>:<major>:<minor> or eddystone:<ns>:<instance>.
    key: Mapped[str] = mapped_column(String(80))
    external_id: Mapped[str | None] = mapped_column(String(128))  # the operator's asset label
    name: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[BaseGeometry] = mapped_column(GeometryType)  # Point, WGS84
    power_1m: Mapped[float] = mapped_column(Float)  # RSSI at 1 m, dBm (Eddystone's 0 m figure converted)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    level: Mapped[Level] = relationship(lazy="joined")
    zone: Mapped[Zone | None] = relationship(lazy="joined")


class SigningKey(Base):
    """An HMAC key of a venue for one purpose (``qr`` codes, shopper ``identity`` codes).

    The newest unretired key signs; every unretired key verifies, so printed codes survive a rotation
    until the operator retires the old key. Stored in clear: HMAC needs the secret itself.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("venue_id", "purpose", "kid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    kid: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QrCode(Base):
    """A printed QR code bound to a zone, a store, or a product shelf (store + SKU)."""

    __tablename__ = "qr_codes"
    __table_args__ = (UniqueConstraint("venue_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))  # public id inside the signed payload
    label: Mapped[str | None] = mapped_column(String(200))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    sku: Mapped[str | None] = mapped_column(String(64))
    # Where it hangs, when surveyed; otherwise a point inside its zone stands in for it.
    position: Mapped[BaseGeometry | None] = mapped_column(GeometryType)
    level_id: Mapped[int | None] = mapped_column(ForeignKey("levels.id", ondelete="RESTRICT"))
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    zone: Mapped[Zone | None] = relationship(lazy="joined")
    store: Mapped[Store | None] = relationship(lazy="joined")
    level: Mapped[Level | None] = relationship(lazy="joined")
