"""API shapes of campaigns, push policies, preferences, decisions and simulations."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from mallfence.engagement.matching import TRIGGERS
from mallfence.engagement.segments import SEGMENTS
from mallfence.venues.schemas import ZoneKind

Trigger = Literal["enter", "dwell", "exit", "qr_scan", "first_visit"]
assert set(Trigger.__args__) == set(TRIGGERS)  # type: ignore[attr-defined]
Segment = Literal["new", "returning", "lapsing", "lapsed", "high_value"]
assert set(Segment.__args__) == set(SEGMENTS)  # type: ignore[attr-defined]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = Day.__args__  # type: ignore[attr-defined]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_LANG = re.compile(r"^[a-z]{2,3}$")


def _hhmm(v: str) -> str:
    if not _HHMM.match(v):
        raise ValueError(f"{v!r} is not a time of day as HH:MM (00:00-23:59)")
    return v


def _url(v: str | None) -> str | None:
    if v is not None and not re.match(r"^(https?://|[a-z][a-z0-9+.-]*://)\S+$", v):
        raise ValueError(f"{v[:40]!r} is not a URL (https://… or an app scheme like mallapp://…)")
    return v


HHMM = Annotated[str, AfterValidator(_hhmm)]
# [start, end) as two "HH:MM" strings. Described as a plain two-item array: OpenAPI tools (clients, the fuzz
# test's schemathesis) handle "items" far better than JSON Schema 2020's "prefixItems".
Window = Annotated[tuple[HHMM, HHMM], WithJsonSchema({
    "type": "array", "minItems": 2, "maxItems": 2,
    "items": {"type": "string", "pattern": _HHMM.pattern, "description": "HH:MM, 24-hour, venue time"}})]
Url = Annotated[str | None, Field(None, max_length=2048), AfterValidator(_url)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Targets(Strict):
    """Where it fires: zones by id, tag or kind, and stores (their zones). Any match counts."""

    zone_ids: list[int] = Field([], max_length=1000)
    tags: list[str] = Field([], max_length=50)
    kinds: list[ZoneKind] = Field([], max_length=9)
    store_ids: list[int] = Field([], max_length=1000)

    @model_validator(mode="after")
    def _some(self) -> Targets:
        if not (self.zone_ids or self.tags or self.kinds or self.store_ids):
            raise ValueError("name at least one zone, tag, kind or store: a campaign without a place never fires")
        return self


class When(Strict):
    """When it may fire, in the venue's timezone. Omitted parts do not restrict."""

    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    days: list[Day] | None = Field(None, description="weekdays; omit for every day")
    hours: Window | None = Field(None, description="daily window [start, end); may wrap midnight")

    @model_validator(mode="after")
    def _can_fire(self) -> When:
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at: this schedule can never fire")
        if self.days is not None and not self.days:
            raise ValueError("days is empty: this schedule can never fire (omit days for every day)")
        if self.hours is not None and self.hours[0] == self.hours[1]:
            raise ValueError("hours start and end are equal: a window of no time never fires (omit hours for all day)")
        return self


class Audience(Strict):
    segments: list[Segment] = Field([], description="only shoppers in these segments; empty: everyone")
    visitors: Literal["all", "new", "returning"] = "all"


class LocalText(Strict):
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=500)


class Content(LocalText):
    """What the push says; ``{incentive}`` in title or body is replaced by the shopper's incentive tier."""

    deep_link: Url = None
    image_url: Url = None
    texts: dict[str, LocalText] = Field({}, description="by app language (ISO 639-1, e.g. 'da'): translations")

    @model_validator(mode="after")
    def _langs(self) -> Content:
        bad = [k for k in self.texts if not _LANG.match(k)]
        if bad:
            raise ValueError(f"texts keys must be language codes like 'da' or 'de', not {bad[0]!r}")
        return self


class IncentiveTier(Strict):
    """First matching tier wins: list the strongest decline first."""

    segment: Segment | Literal["*"] = Field(description="'*' for any segment")
    text: str = Field(min_length=1, max_length=60, description="what replaces {incentive}, e.g. '20 % off'")
    min_decline: float | None = Field(None, ge=0, le=1, description="lapsing: at least this decline (0.5 = 50 %)")


class CampaignFields(Strict):
    name: str = Field(min_length=1, max_length=200)
    trigger: Trigger
    min_stay_s: float | None = Field(None, gt=0, le=86400, description="dwell / exit: the stay needed")
    targets: Targets
    schedule: When = When()
    audience: Audience = Audience()
    content: Content
    incentives: list[IncentiveTier] = Field([], max_length=20)
    priority: int = Field(0, ge=-100, le=100, description="when several fire at once, the highest wins")
    budget: int | None = Field(None, ge=1, description="total pushes this campaign may send; omit for no limit")
    cooldown_s: float = Field(86400.0, ge=0, description="not again to the same shopper within this long")
    holdout: float = Field(0.0, ge=0, le=0.5, description="share of shoppers who would get it but are held "
                           "out (a control group: lift is measured, not assumed)")
    skus: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field([], max_length=50)
    topic: str = Field("offers", min_length=1, max_length=32, description="what shoppers opt out of")


class CampaignIn(CampaignFields):
    status: Literal["draft", "active", "paused"] = "draft"

    @model_validator(mode="after")
    def _coherent(self) -> CampaignIn:
        check_coherent(self.trigger, self.min_stay_s, self.content, self.incentives)
        return self


def check_coherent(trigger: str, min_stay_s: float | None, content: Content, incentives: list[IncentiveTier]) -> None:
    if min_stay_s is not None and trigger not in ("dwell", "exit"):
        raise ValueError(f"min_stay_s is for dwell and exit triggers, not {trigger}")
    texts = [content.title, content.body, *(t.title for t in content.texts.values()),
             *(t.body for t in content.texts.values())]
    if incentives and not any("{incentive}" in t for t in texts):
        raise ValueError("incentives are given but no title or body says {incentive}: they would never show")
    if "{incentive}" in " ".join(texts) and not incentives:
        raise ValueError("the text says {incentive} but no incentive tiers are given")


class CampaignUpdate(Strict):
    """Fields to change; nested parts (targets, schedule, content, ...) are replaced whole."""

    name: str | None = Field(None, min_length=1, max_length=200)
    status: Literal["draft", "active", "paused", "ended"] | None = None
    trigger: Trigger | None = None
    min_stay_s: float | None = Field(None, gt=0, le=86400)
    targets: Targets | None = None
    schedule: When | None = None
    audience: Audience | None = None
    content: Content | None = None
    incentives: list[IncentiveTier] | None = Field(None, max_length=20)
    priority: int | None = Field(None, ge=-100, le=100)
    budget: int | None = Field(None, ge=1)
    cooldown_s: float | None = Field(None, ge=0)
    holdout: float | None = Field(None, ge=0, le=0.5)
    skus: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(None, max_length=50)
    topic: str | None = Field(None, min_length=1, max_length=32)


class CampaignOut(CampaignFields):
    id: int
    venue: str
    status: Literal["draft", "active", "paused", "ended"]
    sends: int
    zone_ids: list[int] = Field(description="the zones its targets resolve to now")
    created_at: datetime
    updated_at: datetime


class PushPolicy(Strict):
    """The push budget every shopper of the venue shares across campaigns and channels."""

    max_per_day: int = Field(2, ge=0, le=50, description="marketing and wishlist pushes per local day")
    max_per_week: int = Field(5, ge=0, le=200, description="per rolling 7 days")
    min_gap_s: float = Field(1800.0, ge=0, le=86400, description="at least this long between two pushes")
    quiet_hours: Window | None = Field(("21:00", "09:00"), description="no budgeted pushes [start, end)")


class Preferences(Strict):
    opt_out: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        [], max_length=20, description="topics this app wants no pushes about, e.g. 'offers', 'wishlist'")


class DecisionOut(BaseModel):
    id: int
    device_id: str
    at: datetime
    trigger: str
    event_id: int | None
    zone_id: int | None
    kind: str
    category: str
    campaign_id: int | None
    sent: bool
    reason: str | None
    detail: dict[str, Any]
    notification_id: int | None
    opened_at: datetime | None = None


class SimEvent(Strict):
    kind: Trigger
    zone_id: int
    at: AwareDatetime
    duration_s: float | None = Field(None, ge=0)


class SimulateIn(Strict):
    """A recorded walk (a device's stored events between two times) or a simulated one (events)."""

    device_id: str | None = Field(None, max_length=64)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    events: list[SimEvent] | None = Field(None, max_length=5000)
    segment: Segment | None = Field(None, description="simulated walk: the shopper's segment")
    decline: float | None = Field(None, ge=0, le=1)
    language: str | None = Field(None, max_length=8)
    marketing_consent: bool = True
    with_others: bool = Field(False, description="let the venue's other active campaigns compete")

    @model_validator(mode="after")
    def _one_walk(self) -> SimulateIn:
        if (self.device_id is None) == (self.events is None):
            raise ValueError("give either device_id (a recorded walk) or events (a simulated one)")
        return self


class SimStep(BaseModel):
    at: datetime
    trigger: str
    zone_id: int
    campaign_id: int | None
    sent: bool
    reason: str | None
    detail: dict[str, Any]
    title: str | None


class SimulateOut(BaseModel):
    campaign_id: int
    triggers: int
    sent: int
    steps: list[SimStep]
