"""Engagement API: campaigns and their dry runs, the venue's push budget, a device's preferences and the
decisions made about it, and shoppers' segments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import func, select, update

from mallfence.auth.deps import AnyOperator, VenueAccess
from mallfence.db import transaction
from mallfence.delivery.models import Notification
from mallfence.deps import CurrentDevice, RuntimeDep, SessionDep, write_venue
from mallfence.devices import service as device_service
from mallfence.engagement import schemas, simulate
from mallfence.engagement import service as svc
from mallfence.engagement.decide import segment_of
from mallfence.engagement.models import Campaign, Decision, ShopperSegment
from mallfence.errors import NotFound
from mallfence.venues import service as venue_service

venues = APIRouter(prefix="/v1/venues/{slug}", tags=["engagement"], dependencies=[VenueAccess])
campaigns = APIRouter(prefix="/v1/campaigns", tags=["engagement"])
devices = APIRouter(prefix="/v1/devices", tags=["engagement"])


@venues.post("/campaigns", status_code=201, response_model=schemas.CampaignOut)
def create_campaign(slug: str, body: schemas.CampaignIn, rt: RuntimeDep) -> schemas.CampaignOut:
    """A campaign starts as a draft unless ``status`` says active; the index of every replica follows."""
    return write_venue(rt, slug, lambda s, v: svc.campaign_out(s, venue=v, campaign=svc.create_campaign(
        s, venue=v, data=body)))


@venues.get("/campaigns", response_model=list[schemas.CampaignOut])
def list_campaigns(slug: str, s: SessionDep, status: str | None = None) -> list[schemas.CampaignOut]:
    venue = venue_service.get_venue(s, slug=slug)
    return [svc.campaign_out(s, venue=venue, campaign=c) for c in svc.list_campaigns(s, venue=venue, status=status)]


@venues.get("/campaigns/{campaign_id}", response_model=schemas.CampaignOut)
def get_campaign(slug: str, campaign_id: int, s: SessionDep) -> schemas.CampaignOut:
    venue = venue_service.get_venue(s, slug=slug)
    return svc.campaign_out(s, venue=venue, campaign=svc.get_campaign(s, campaign_id=campaign_id, venue=venue))


@venues.patch("/campaigns/{campaign_id}", response_model=schemas.CampaignOut)
def update_campaign(slug: str, campaign_id: int, body: schemas.CampaignUpdate, rt: RuntimeDep) -> schemas.CampaignOut:
    def change(s, v):
        campaign = svc.update_campaign(s, venue=v, campaign=svc.get_campaign(s, campaign_id=campaign_id, venue=v),
                                       data=body)
        return svc.campaign_out(s, venue=v, campaign=campaign)
    return write_venue(rt, slug, change)


@venues.delete("/campaigns/{campaign_id}", status_code=204)
def delete_campaign(slug: str, campaign_id: int, rt: RuntimeDep) -> Response:
    write_venue(rt, slug, lambda s, v: svc.delete_campaign(s, campaign=svc.get_campaign(s, campaign_id=campaign_id,
                                                                                         venue=v)))
    return Response(status_code=204)


def campaign_reader(campaign_id: int, caller: AnyOperator, s: SessionDep) -> Campaign:
    """The campaign, for an operator key with access to its venue (another venue's: as if it did not exist)."""
    campaign = svc.get_campaign(s, campaign_id=campaign_id)
    if not caller.sees(campaign.venue_id):
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


@campaigns.post("/{campaign_id}/simulate", response_model=schemas.SimulateOut)
def simulate_campaign(body: schemas.SimulateIn, s: SessionDep,
                      campaign: Annotated[Campaign, Depends(campaign_reader)]) -> schemas.SimulateOut:
    """Dry run on a device's recorded walk or on a list of events: nothing is stored or sent."""
    return simulate.simulate(s, campaign=s.merge(campaign), data=body)


@venues.get("/push-policy", response_model=schemas.PushPolicy)
def get_policy(slug: str, s: SessionDep) -> schemas.PushPolicy:
    return svc.policy_out(venue_service.get_venue(s, slug=slug))


@venues.put("/push-policy", response_model=schemas.PushPolicy)
def put_policy(slug: str, body: schemas.PushPolicy, rt: RuntimeDep) -> schemas.PushPolicy:
    """The budget every shopper of the venue shares: caps, minimum gap, quiet hours."""
    return write_venue(rt, slug, lambda s, v: svc.set_policy(s, venue=v, data=body))


@venues.get("/decisions", response_model=list[schemas.DecisionOut])
def venue_decisions(slug: str, s: SessionDep, device_id: str | None = None, campaign_id: int | None = None,
                    sent: bool | None = None, before_id: Annotated[int | None, Query(ge=1)] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[schemas.DecisionOut]:
    """The decision log, newest first (``before_id`` pages back)."""
    venue = venue_service.get_venue(s, slug=slug)
    q = select(Decision).where(Decision.venue_id == venue.id)
    if device_id is not None:
        q = q.where(Decision.device_id == device_id)
    if campaign_id is not None:
        q = q.where(Decision.campaign_id == campaign_id)
    if sent is not None:
        q = q.where(Decision.sent.is_(sent))
    if before_id is not None:
        q = q.where(Decision.id < before_id)
    return [_out(d) for d in s.scalars(q.order_by(Decision.id.desc()).limit(limit))]


@venues.get("/shoppers/{shopper_id}/segment")
def shopper_segment(slug: str, shopper_id: str, rt: RuntimeDep) -> dict[str, object]:
    """The shopper's segment today and the numbers that put them there."""
    with transaction(rt.sessions) as s:
        venue = venue_service.get_venue(s, slug=slug)
        device_service.get_shopper(s, venue=venue, shopper_id=shopper_id)
        tz = ZoneInfo(venue.timezone)
        row = segment_of(s, shopper_id=shopper_id, venue_id=venue.id, tz=tz, today=datetime.now(tz).date(),
                         spend=rt.spend)
        return {"shopper_id": shopper_id, "segment": row.segment, "decline": row.decline, "as_of": row.as_of,
                "explain": row.explain}


@venues.get("/segments")
def segment_counts(slug: str, s: SessionDep) -> dict[str, object]:
    """How many shoppers are in each segment, as last computed (``mallfence segments`` recomputes all)."""
    venue = venue_service.get_venue(s, slug=slug)
    rows = s.execute(select(ShopperSegment.segment, func.count(), func.max(ShopperSegment.as_of))
                     .where(ShopperSegment.venue_id == venue.id).group_by(ShopperSegment.segment)).all()
    return {"segments": {seg: n for seg, n, _ in rows}, "as_of": max((d for _, _, d in rows), default=None)}


@devices.put("/{device_id}/preferences", response_model=schemas.Preferences)
def put_preferences(body: schemas.Preferences, device: CurrentDevice, rt: RuntimeDep) -> schemas.Preferences:
    """Topics this install wants no pushes about (``offers``, ``wishlist``, ...); service pushes still come."""
    with transaction(rt.sessions) as s:
        return svc.set_preferences(s, device=device, data=body)


@devices.get("/{device_id}/decisions", response_model=list[schemas.DecisionOut])
def device_decisions(device: CurrentDevice, s: SessionDep, before_id: Annotated[int | None, Query(ge=1)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[schemas.DecisionOut]:
    """Every push considered for this install, sent or not and why, newest first."""
    q = select(Decision).where(Decision.device_id == device.id)
    if before_id is not None:
        q = q.where(Decision.id < before_id)
    return [_out(d) for d in s.scalars(q.order_by(Decision.id.desc()).limit(limit))]


@devices.post("/{device_id}/notifications/{notification_id}/opened", status_code=204)
def notification_opened(notification_id: int, device: CurrentDevice, rt: RuntimeDep) -> Response:
    """The shopper opened this push (tapped it, or read it in the app): the funnel's "opened" step."""
    with transaction(rt.sessions) as s:
        note = s.get(Notification, notification_id)
        if note is None or note.device_id != device.id:
            raise NotFound(f"notification {notification_id} not found for this device")
        s.execute(update(Decision).where(Decision.notification_id == notification_id, Decision.opened_at.is_(None))
                  .values(opened_at=datetime.now(UTC)))
    return Response(status_code=204)


def _out(d: Decision) -> schemas.DecisionOut:
    return schemas.DecisionOut(id=d.id, device_id=d.device_id, at=d.at, trigger=d.trigger, event_id=d.event_id,
                               zone_id=d.zone_id,
                               kind=d.kind, category=d.category, campaign_id=d.campaign_id, sent=d.sent,
                               reason=d.reason, detail=d.detail, notification_id=d.notification_id,
                               opened_at=d.opened_at)

