"""Venues, their levels, zones and stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String, UniqueConstraint
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
