"""API shapes of staff accounts, identity codes and the customer card."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mallfence.tracking.schemas import ZoneRef

Role = Literal["staff", "manager"]


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store_id: int
    name: str = Field(min_length=1, max_length=100)
    role: Role = "staff"


class StaffUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store_id: int | None = None
    name: str | None = Field(None, min_length=1, max_length=100)
    role: Role | None = None
    active: bool | None = None


class StoreRef(BaseModel):
    id: int
    name: str
    zone_id: int | None = None


class StaffOut(BaseModel):
    id: int
    venue: str
    store: StoreRef
    name: str
    role: Role
    active: bool
    created_at: datetime
    last_seen_at: datetime | None


class StaffCreated(StaffOut):
    token: str = Field(description="bearer token for the staff app; shown once")


class IdentityCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store_id: int | None = Field(None, description="only staff of this store may scan it (e.g. a collection "
                                                   "screen for one store); default: any staff of the venue")


class IdentityCodeOut(BaseModel):
    code: str = Field(description="show it as a QR code; it scans once")
    expires_at: datetime
    refresh_after_s: float = Field(description="fetch a fresh code after this many seconds")
    store_id: int | None


class StaffScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=256, description="the text of the shopper's identity QR code")


class ShopperRef(BaseModel):
    id: str
    loyalty_id: str | None
    display_name: str | None


class DeviceRef(BaseModel):
    id: str
    platform: str
    locale: str | None
    app_version: str | None


class Consent(BaseModel):
    location: bool
    marketing: bool
    analytics: bool
    version: str
    recorded_at: datetime


class Visit(BaseModel):
    zone: ZoneRef
    entered_at: datetime
    left_at: datetime | None = Field(description="null while still inside")
    duration_s: float | None


class VisitStats(BaseModel):
    days: int = Field(description="days (venue time) on which the shopper was seen in the venue")
    first_seen: datetime | None
    last_seen: datetime | None


class CustomerCard(BaseModel):
    """What a staff member sees after scanning a shopper's identity code."""

    scan_id: int
    scanned_at: datetime
    store: StoreRef
    shopper: ShopperRef
    device: DeviceRef
    consent: Consent | None = Field(description="null until the app has reported the shopper's choices")
    here_now: list[ZoneRef] = Field(description="zones of this venue the shopper is in now")
    recent_visits: list[Visit] = Field(description="the last visits to zones of this venue, newest first")
    visits: VisitStats
    wishlist: list[dict[str, Any]] = Field(description="products the shopper saved, newest first, each with its "
                                                       "stock at this store (``stock: null``: no record here)")
    orders: list[dict[str, Any]] = Field(description="the shopper's pending click-and-collect orders at this store")


class StaffScanOut(BaseModel):
    id: int
    at: datetime
    staff_id: int | None
    staff_name: str | None
    shopper_id: str | None
    device_id: str
