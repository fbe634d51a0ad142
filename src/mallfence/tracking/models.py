"""Presence events: the durable output of tracking."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from mallfence.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for an event log.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_device_id_id", "device_id", "id"),
        Index("ix_events_zone_id_occurred_at", "zone_id", "occurred_at"),
        # Analytics read a venue's events by time (dwell percentiles, cells not rolled up yet).
        Index("ix_events_venue_id_occurred_at", "venue_id", "occurred_at"),
        # Enters alone, with the zone and device: distinct shoppers, paths and funnel visits read the index
        # only (PostgreSQL index-only scans), not the rows; about half the events, so half an index.
        Index("ix_events_enters", "venue_id", "occurred_at", "zone_id", "device_id",
              postgresql_where=text("kind = 'enter'"), sqlite_where=text("kind = 'enter'")),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # No FK: the event log outlives a deleted zone (analytics keep counting it). None for a scan in a
    # store that has no zone.
    zone_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # enter | exit | dwell | qr_scan | staff_scan
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)  # device time of the transition
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16), default="gps")
    fix_id: Mapped[str | None] = mapped_column(String(64))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    floor: Mapped[int | None] = mapped_column(Integer)
    # Scans only: what was scanned (QR code, product SKU, store, staff member).
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Why the fix behind it looks spoofed ("speed", "mock_location", "far_from_beacons"): such events never
    # trigger marketing pushes.
    flags: Mapped[list[str] | None] = mapped_column(JSON)
