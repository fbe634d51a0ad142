"""API shapes of webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ZONE_EVENTS = ("zone.enter", "zone.exit", "zone.dwell", "qr.scanned", "staff.identified")
NOTIFICATION_EVENTS = ("notification.sent", "notification.delivered", "notification.failed", "notification.expired")
EVENT_TYPES = (*ZONE_EVENTS, *NOTIFICATION_EVENTS)  # what an endpoint may subscribe to ("ping" is test-only)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url must start with http:// or https://, not {url[:20]!r}")
    if not parts.hostname:
        raise ValueError("url has no host")
    if any(c.isspace() for c in url):
        raise ValueError("url contains whitespace")
    return url


def check_event_types(types: list[str]) -> list[str]:
    for t in types:
        if t not in EVENT_TYPES:
            raise ValueError(f"unknown event type {t!r}; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(types), key=EVENT_TYPES.index)  # duplicates collapse, order is canonical


Url = Annotated[str, Field(min_length=1, max_length=2048, description="http(s) URL that receives POSTed events"),
                AfterValidator(check_url)]
EventTypes = Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES), description=", ".join(EVENT_TYPES)),
                       AfterValidator(check_event_types)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes
    description: str | None = Field(None, max_length=200)
    active: bool = True


class EndpointPatch(BaseModel):
    """Only the fields given change; ``rotate_secret: true`` replaces the secret and returns the new one."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(None, max_length=200)
    active: bool | None = None
    rotate_secret: bool = False


class EndpointOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: datetime
    pending: int = Field(description="deliveries not yet delivered or given up")
    # Only in the answers to create and to a patch with rotate_secret: it is never shown again.
    secret: str | None = None


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="the payload's id: the same for every retry, for de-duplicating receivers")
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None = Field(description="when the next try is due (pending only)")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
