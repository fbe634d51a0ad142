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
