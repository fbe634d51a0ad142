"""API shapes of fixes in and events out (HTTP and websocket)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class FixIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str | None = Field(None, max_length=64, description="client id of the fix, echoed in the events it causes")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float = Field(gt=0, le=10_000, description="radius of 68 % confidence, metres")
    floor: int | None = Field(None, ge=-20, le=200, description="level ordinal if the OS knows it")
    ts: AwareDatetime = Field(description="device time of the fix, ISO 8601 with a UTC offset")


class PositionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fixes: list[FixIn] = Field(min_length=1)


class Dropped(BaseModel):
    index: int
    reason: Literal["stale"]


class ZoneRef(BaseModel):
    id: int
    external_id: str | None = None
    name: str | None = None
    kind: str | None = None
    level: int | None = None


class EventOut(BaseModel):
    id: int
    kind: Literal["enter", "exit", "dwell"]
    zone: ZoneRef
    at: datetime
    duration_s: float | None
    reason: str | None
    fix_id: str | None
    source: str


class IngestOut(BaseModel):
    accepted: int
    dropped: list[Dropped]
    events: list[EventOut]


# -- websocket, client to server ------------------------------------------------------------------
class WsFix(FixIn):
    type: Literal["fix"]


class WsFixes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["fixes"]
    fixes: list[FixIn] = Field(min_length=1)


class WsPing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]


class WsAck(BaseModel):
    """The app has shown these notifications."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ack"]
    ids: list[int] = Field(min_length=1, max_length=1000)


WsClientMessage = Annotated[WsFix | WsFixes | WsPing | WsAck, Field(discriminator="type")]


def ws_message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}
