"""API shapes of push tokens and notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Category = Literal["operator", "service", "marketing"]


class PushTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=4096, description="FCM registration token of this install")
    platform: Literal["ios", "android", "web"]


class PushTokenOut(BaseModel):
    id: int
    platform: str
    created_at: datetime
    refreshed_at: datetime
    invalid_at: datetime | None
    invalid_reason: str | None


class NotificationIn(BaseModel):
    """A push from an operator to chosen devices, or to every device inside a zone right now."""

    model_config = ConfigDict(extra="forbid")

    device_ids: list[str] | None = Field(None, min_length=1, max_length=1000)
    zone_id: int | None = Field(None, description="send to the devices currently inside this zone")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=2000)
    data: dict[str, str] = Field({}, max_length=50, description="string key/values for the app")
    deep_link: str | None = Field(None, max_length=2048)
    category: Category = "operator"
    ttl_s: int = Field(3600, ge=60, le=28 * 86400, description="undelivered after this long: expired")
    collapse_key: str | None = Field(None, max_length=100)
    dedupe_key: str | None = Field(None, min_length=1, max_length=150,
                                   description="the same key for the same device twice gives one notification")

    @model_validator(mode="after")
    def _one_target(self) -> NotificationIn:
        if (self.device_ids is None) == (self.zone_id is None):
            raise ValueError("give exactly one of device_ids or zone_id")
        return self


class SendResult(BaseModel):
    created: list[int]
    duplicates: int
    devices: int


class AttemptOut(BaseModel):
    channel: str
    outcome: str
    reason: str | None
    at: datetime


class NotificationOut(BaseModel):
    id: int
    device_id: str
    category: str
    title: str
    body: str
    data: dict[str, str]
    deep_link: str | None
    status: str
    channel: str | None
    attempts: int
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    history: list[AttemptOut] = []
