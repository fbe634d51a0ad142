"""Campaigns, the decision log, and each shopper's current segment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mallfence.db import Base, UTCDateTime, utcnow
from mallfence.tracking.models import EventId


class Campaign(Base):
    """An offer: where and when it fires, for whom, what it says, how much of it there is."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | active | paused | ended
    trigger: Mapped[str] = mapped_column(String(16))  # enter | dwell | exit | qr_scan | first_visit
    min_stay_s: Mapped[float | None] = mapped_column(Float)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"zone_ids": [], "tags": [], "kinds": []}
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON)  # starts_at, ends_at, days, hours
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)  # segments, visitors
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # title, body, deep_link, image_url, texts
    incentives: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    budget: Mapped[int | None] = mapped_column(Integer)  # total sends, None: no limit
    sends: Mapped[int] = mapped_column(Integer, default=0)
    cooldown_s: Mapped[float] = mapped_column(Float, default=86400.0)
    # Share of shoppers who would get it but are held out, so its lift is measured, not assumed.
    holdout: Mapped[float] = mapped_column(Float, default=0.0)
    skus: Mapped[list[str]] = mapped_column(JSON, default=list)
    topic: Mapped[str] = mapped_column(String(32), default="offers")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Decision(Base):
    """One push considered for one shopper: sent (with its notification) or held back, and why."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_device_id_id", "device_id", "id"),
        Index("ix_decisions_shopper_id_at", "shopper_id", "at"),
        Index("ix_decisions_campaign_id_at", "campaign_id", "at"),
        Index("ix_decisions_notification_id", "notification_id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(EventId)  # the trigger (no FK: the log outlives retention)
    trigger: Mapped[str] = mapped_column(String(16))
    zone_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # campaign | wishlist_in_stock | order_ready | ...
    category: Mapped[str] = mapped_column(String(16))
    sent: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(32))  # None when sent
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the numbers behind the verdict
    dedupe_key: Mapped[str] = mapped_column(String(200))
    notification_id: Mapped[int | None] = mapped_column(EventId)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # device time of the trigger: what the budget counts
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the app reported the shopper opened it
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShopperSegment(Base):
    """A shopper's segment as last computed, with the numbers behind it."""

    __tablename__ = "shopper_segments"

    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"), primary_key=True)
    venue_id: Mapped[int] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    segment: Mapped[str] = mapped_column(String(16))
    decline: Mapped[float | None] = mapped_column(Float)
    explain: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    as_of: Mapped[date] = mapped_column(Date)  # the venue-local day it is valid for
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
