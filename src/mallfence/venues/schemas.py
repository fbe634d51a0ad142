"""API shapes of venues, levels, zones and stores."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

ZoneKind = Literal[
    "venue", "entrance", "corridor", "store", "department", "pickup", "food_court", "parking", "custom"
]
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$|^[a-z0-9]$"
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIMEZONES = frozenset(available_timezones())


PathLossExponent = Field(2.5, ge=1.5, le=5.0, description="beacon ranges: log-distance path-loss exponent, "
                         "about 2 in open halls, 2.5-3.5 among shelves and walls")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _check_timezone(v: str) -> str:
    if v not in _TIMEZONES:
        raise ValueError(f"unknown IANA timezone {v!r} (e.g. 'Europe/London')")
    return v


class VenueCreate(Strict):
    slug: str = Field(pattern=SLUG, description="URL name, lowercase letters, digits and dashes")
    name: str = Field(min_length=1, max_length=200)
    timezone: str = Field(description="IANA timezone of the venue, e.g. Europe/Berlin")
    anchor: tuple[float, float] = Field(description="[longitude, latitude] of the local metric origin")
    path_loss_exponent: float = PathLossExponent

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, v: tuple[float, float]) -> tuple[float, float]:
        lon, lat = v
        if not (-180 <= lon <= 180 and -85 <= lat <= 85):
            raise ValueError("anchor must be [longitude -180..180, latitude -85..85]")
        return v


class VenueUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = None
    path_loss_exponent: float | None = Field(None, ge=1.5, le=5.0)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_timezone(v)


class LevelIn(Strict):
    ordinal: int = Field(ge=-20, le=200, description="IMDF ordinal: 0 ground, -1 below, 1 first floor")
    name: str = Field(min_length=1, max_length=100)
    short_name: str | None = Field(None, max_length=20)


class LevelOut(LevelIn):
    model_config = ConfigDict(from_attributes=True)


class VenueOut(BaseModel):
    slug: str
    name: str
    timezone: str
    anchor: tuple[float, float]
    path_loss_exponent: float
    levels: list[LevelOut]
    zone_count: int
    created_at: datetime
    updated_at: datetime


class PresenceOverrides(Strict):
    enter_margin_m: float | None = Field(None, ge=0, le=100)
    exit_margin_m: float | None = Field(None, ge=0, le=200)
    enter_debounce_s: float | None = Field(None, ge=0, le=3600)
    exit_debounce_s: float | None = Field(None, ge=0, le=3600)
    dwell_s: float | None = Field(None, gt=0, le=86_400)
    max_accuracy_m: float | None = Field(None, gt=0, le=1000)

    def given(self) -> dict[str, float]:
        return self.model_dump(exclude_none=True)


class OpeningHours(Strict):
    """Per weekday a list of [open, close] as HH:MM in the venue's timezone."""

    mon: list[tuple[str, str]] = []
    tue: list[tuple[str, str]] = []
    wed: list[tuple[str, str]] = []
    thu: list[tuple[str, str]] = []
    fri: list[tuple[str, str]] = []
    sat: list[tuple[str, str]] = []
    sun: list[tuple[str, str]] = []

    @field_validator(*DAYS)
    @classmethod
    def _spans(cls, spans: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for start, end in spans:
            if not (_HHMM.match(start) and _HHMM.match(end)):
                raise ValueError(f"times must be HH:MM, got {start!r}-{end!r}")
            if end <= start:
                raise ValueError(f"closing time {end} is not after opening time {start}")
        return spans


class StoreFields(Strict):
    name: str = Field(min_length=1, max_length=200)
    category: str | None = Field(None, max_length=100)
    opening_hours: OpeningHours = OpeningHours()


class ZoneIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: ZoneKind
    level: int | None = Field(None, description="ordinal of one of the venue's levels; null = venue-wide")
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon, MultiPolygon, or Point with radius_m")
    radius_m: float | None = Field(None, description="circle radius in metres, with a Point geometry")
    external_id: str | None = Field(None, min_length=1, max_length=128)
    tags: list[str] = Field([], max_length=50)
    metadata: dict[str, Any] = {}
    presence: PresenceOverrides = PresenceOverrides()
    active: bool = True
    store: StoreFields | None = None


class ZoneUpdate(Strict):
    """Fields to change; geometry and radius_m change together."""

    name: str | None = Field(None, min_length=1, max_length=200)
    kind: ZoneKind | None = None
    level: int | None = None
    geometry: dict[str, Any] | None = None
    radius_m: float | None = None
    external_id: str | None = Field(None, min_length=1, max_length=128)
    tags: list[str] | None = Field(None, max_length=50)
    metadata: dict[str, Any] | None = None
    presence: PresenceOverrides | None = None
    active: bool | None = None


class StoreOut(StoreFields):
    id: int


class ZoneOut(BaseModel):
    id: int
    external_id: str | None
    name: str
    kind: str
    level: int | None
    geometry: dict[str, Any]
    radius_m: float | None
    tags: list[str]
    metadata: dict[str, Any]
    presence: dict[str, float]
    effective_presence: dict[str, float | None]
    active: bool
    store: StoreOut | None
    updated_at: datetime


class StoreIn(StoreFields):
    zone_id: int | None = None


class StoreUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    category: str | None = Field(None, max_length=100)
    opening_hours: OpeningHours | None = None
    zone_id: int | None = None


class StoreRecord(StoreFields):
    id: int
    zone_id: int | None


class ImportSummary(BaseModel):
    created: int
    updated: int
    unchanged: int
    levels_created: int
    stores: int
    zones: int


class ImportCounts(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class ImdfNote(BaseModel):
    file: str | None = Field(description="archive file the note is about")
    message: str
    feature_ids: list[str] = Field([], description="the IMDF features concerned (several when grouped)")


class ImdfImportReport(BaseModel):
    """What an IMDF import did, and everything it left out or changed on the way."""

    venue: str
    venue_created: bool
    name: str
    timezone: str
    timezone_source: str = Field(description="parameter, kept (existing venue), or how it was guessed")
    language: str = Field(description="language of the labels used for names (all are kept in metadata.names)")
    levels_created: int
    levels_updated: int
    zones: dict[str, ImportCounts] = Field(description="per zone kind")
    total: ImportCounts
    stores: int
    not_in_archive: list[str] = Field(description="external_ids of zones the archive no longer has")
    pruned: int = Field(description="how many of those were deleted (prune=true)")
    features: dict[str, int] = Field(description="features read per IMDF type")
    ignored_types: dict[str, int] = Field(description="IMDF types read but not imported, with counts")
    warnings: list[ImdfNote] = Field(description="look at these: unconverted hours, unknown files, ...")
    skipped: list[ImdfNote] = Field(description="features not imported, with the reason")
    notes: list[ImdfNote] = Field(description="adjustments made on the way (lowered margins, dropped PH rules)")
