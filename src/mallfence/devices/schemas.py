"""API shapes of device registration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DeviceRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venue: str = Field(min_length=1, max_length=64, description="slug of the venue the app belongs to")
    platform: Literal["ios", "android", "web", "stub"]
    app_version: str | None = Field(None, max_length=64)
    locale: str | None = Field(None, max_length=35, description="BCP 47 language tag of the app")


class DeviceRegistered(BaseModel):
    device_id: str
    token: str = Field(description="bearer token for this device; shown once, store it on the device")
    venue: str


class ConsentIn(BaseModel):
    """The shopper's choices as the app recorded them, and the version of the consent text they saw."""

    model_config = ConfigDict(extra="forbid")

    location: bool = Field(description="location tracking in the venue")
    marketing: bool = Field(description="marketing pushes (offers); service messages need no consent")
    analytics: bool = Field(description="use in aggregated analytics")
    version: str = Field(min_length=1, max_length=32, description="version of the consent text shown")


class ConsentOut(ConsentIn):
    recorded_at: str


class ShopperLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(min_length=1, max_length=64)
    loyalty_id: str = Field(min_length=1, max_length=64, description="the shopper's id in your loyalty system")
    display_name: str | None = Field(None, min_length=1, max_length=100, description="how staff greet them")


class ShopperOut(BaseModel):
    id: str
    loyalty_id: str | None
    display_name: str | None
    devices: list[str]
