"""Operator API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mallfence.db import Base, UTCDateTime, utcnow
from mallfence.tracking.models import EventId


class ApiKey(Base):
    """An operator's key: a role (admin writes, analyst reads) over some venues, or all of them (platform)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell keys apart in lists and logs
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the key; the key is never stored
    role: Mapped[str] = mapped_column(String(16))  # admin | analyst
    all_venues: Mapped[bool] = mapped_column(default=False)  # a platform key: every venue, and creating them
    venue_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who did what to which venue, when: every operator and staff action that changes or reveals data."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_venue_id_id", "venue_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # "key:12 ops-team", "staff:7 Ana", "cli"
    action: Mapped[str] = mapped_column(String(64))  # "POST /v1/venues/{slug}/zones", "shopper.erase", ...
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id", ondelete="SET NULL"))
    target: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConsentRecord(Base):
    """Every consent choice a device reported, with the text version shown: the trail a regulator asks for."""

    __tablename__ = "consent_records"
    __table_args__ = (Index("ix_consent_records_device_id_id", "device_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    shopper_id: Mapped[str] = mapped_column(ForeignKey("shoppers.id", ondelete="CASCADE"), index=True)
    location: Mapped[bool]
    marketing: Mapped[bool]
    analytics: Mapped[bool]
    version: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
