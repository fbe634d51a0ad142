"""Campaigns (CRUD, checks against the venue), the venue's push policy, a device's push preferences,
and the campaign index each venue snapshot carries. Keyword-only, session first."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.devices.models import Device
from mallfence.engagement import schemas
from mallfence.engagement.matching import CampaignIndex, CampaignRule, Incentive, Text
from mallfence.engagement.models import Campaign
from mallfence.engagement.rules import Policy, Schedule
from mallfence.errors import Invalid, Issue, NotFound
from mallfence.presence.defaults import settings_for
from mallfence.venues.models import Store, Venue, Zone

_DAY = {d: i for i, d in enumerate(schemas.DAYS)}


# -- targets --------------------------------------------------------------------------------------------
def resolve_targets(targets: dict[str, Any], zones: Iterable[Zone], store_zones: dict[int, int | None]) -> set[int]:
    """The active zones a campaign's targets name now (by id, tag, kind, or a store's zone)."""
    ids = set(targets.get("zone_ids") or ())
    tags = set(targets.get("tags") or ())
    kinds = set(targets.get("kinds") or ())
    stores = {store_zones.get(s) for s in targets.get("store_ids") or ()} - {None}
    return {z.id for z in zones if z.active and (z.id in ids or z.id in stores or z.kind in kinds
                                                  or tags.intersection(z.tags))}


def _venue_zones(session: Session, venue: Venue) -> tuple[list[Zone], dict[int, int | None]]:
    zones = list(session.scalars(select(Zone).where(Zone.venue_id == venue.id)).unique())
    stores = dict(session.execute(select(Store.id, Store.zone_id).where(Store.venue_id == venue.id)).all())
    return zones, stores


def _check(session: Session, venue: Venue, fields: dict[str, Any]) -> None:
    """Refuse what could never fire here: unknown zones or stores, no zone at all, a stay no zone confirms."""
    zones, stores = _venue_zones(session, venue)
    targets = fields["targets"]
    known = {z.id for z in zones}
    issues = [Issue(("targets", "zone_ids"), f"zone {z} does not exist in venue {venue.slug!r}")
              for z in targets.get("zone_ids") or () if z not in known]
    issues += [Issue(("targets", "store_ids"), f"store {s} does not exist in venue {venue.slug!r}")
               for s in targets.get("store_ids") or () if s not in stores]
    issues += [Issue(("targets", "store_ids"), f"store {s} has no zone: nothing to enter")
               for s in targets.get("store_ids") or () if s in stores and stores[s] is None]
    if issues:
        raise Invalid(issues)
    resolved = resolve_targets(targets, zones, stores)
    if not resolved:
        raise Invalid(Issue(("targets",), "no active zone of this venue matches these targets: the campaign could "
                                          "never fire"))
    ends = fields["schedule"].get("ends_at")
    if ends is not None and datetime.fromisoformat(ends) <= datetime.now(UTC) and fields.get("status") == "active":
        raise Invalid(Issue(("schedule", "ends_at"), "ends_at is in the past: an active campaign that has ended "
                                                     "never fires"))
    stay = fields.get("min_stay_s")
    if fields["trigger"] == "dwell" and stay is not None:
        by_id = {z.id: z for z in zones}
        confirms = [settings_for(by_id[z].kind, by_id[z].presence).dwell_s for z in resolved]
        if all(c is None or stay > c for c in confirms):
            longest = max((c for c in confirms if c is not None), default=None)
            raise Invalid(Issue(("min_stay_s",), f"these zones confirm a dwell after at most {longest} s; a dwell "
                                f"event never reports {stay:g} s: lower min_stay_s or raise the zones' "
                                "presence.dwell_s"))


# -- campaigns --------------------------------------------------------------------------------------------
def get_campaign(session: Session, *, campaign_id: int, venue: Venue | None = None) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or (venue is not None and campaign.venue_id != venue.id):
        raise NotFound(f"campaign {campaign_id} not found" + (f" in venue {venue.slug!r}" if venue else ""))
    return campaign


def list_campaigns(session: Session, *, venue: Venue, status: str | None = None) -> list[Campaign]:
    q = select(Campaign).where(Campaign.venue_id == venue.id)
    if status is not None:
        q = q.where(Campaign.status == status)
    return list(session.scalars(q.order_by(Campaign.id)))


def _columns(data: schemas.CampaignFields, fields: set[str] | None = None) -> dict[str, Any]:
    dumped = data.model_dump(mode="json", exclude_unset=fields is not None)
    return {k: v for k, v in dumped.items() if fields is None or k in fields}


def create_campaign(session: Session, *, venue: Venue, data: schemas.CampaignIn) -> Campaign:
    values = _columns(data)
    _check(session, venue, values)
    campaign = Campaign(venue_id=venue.id, sends=0, **values)
    session.add(campaign)
    session.flush()
    return campaign


def update_campaign(session: Session, *, venue: Venue, campaign: Campaign,
                    data: schemas.CampaignUpdate) -> Campaign:
    changes = data.model_dump(mode="json", exclude_unset=True)
    merged = {**campaign_fields(campaign), **changes}
    try:  # the whole campaign must still make sense, not just the changed part
        full = schemas.CampaignIn.model_validate({k: v for k, v in merged.items() if k != "status"})
    except ValidationError as exc:
        raise Invalid([Issue(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)]) from None
    values = {**_columns(full), "status": merged.get("status", campaign.status)}
    _check(session, venue, values)
    for key, value in values.items():
        setattr(campaign, key, value)
    session.flush()
    return campaign


def delete_campaign(session: Session, *, campaign: Campaign) -> None:
    session.delete(campaign)
    session.flush()


def campaign_fields(c: Campaign) -> dict[str, Any]:
    return {"name": c.name, "status": c.status, "trigger": c.trigger, "min_stay_s": c.min_stay_s,
            "targets": c.targets, "schedule": c.schedule, "audience": c.audience, "content": c.content,
            "incentives": c.incentives, "priority": c.priority, "budget": c.budget, "cooldown_s": c.cooldown_s,
            "holdout": c.holdout, "skus": c.skus, "topic": c.topic}


def campaign_out(session: Session, *, venue: Venue, campaign: Campaign) -> schemas.CampaignOut:
    zones, stores = _venue_zones(session, venue)
    return schemas.CampaignOut(id=campaign.id, venue=venue.slug, sends=campaign.sends,
                               zone_ids=sorted(resolve_targets(campaign.targets, zones, stores)),
                               created_at=campaign.created_at, updated_at=campaign.updated_at,
                               **campaign_fields(campaign))


# -- rules for the snapshot ---------------------------------------------------------------------------------
def _time(value: str | None) -> time | None:
    return time.fromisoformat(value) if value else None


def _stamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def to_rule(c: Campaign, tz: ZoneInfo, zone_ids: set[int]) -> CampaignRule:
    s, content = c.schedule or {}, c.content
    hours = s.get("hours") or (None, None)
    schedule = Schedule(tz=tz, starts_at=_stamp(s.get("starts_at")), ends_at=_stamp(s.get("ends_at")),
                        days=frozenset(_DAY[d] for d in s.get("days") or ()), start=_time(hours[0]),
                        end=_time(hours[1]))
    audience = c.audience or {}
    return CampaignRule(
        id=c.id, name=c.name, trigger=c.trigger, zone_ids=frozenset(zone_ids), schedule=schedule,
        text=Text(content["title"], content["body"]),
        texts={k: Text(v["title"], v["body"]) for k, v in (content.get("texts") or {}).items()},
        priority=c.priority, min_stay_s=c.min_stay_s, segments=frozenset(audience.get("segments") or ()),
        visitors=audience.get("visitors", "all"),
        incentives=tuple(Incentive(t["segment"], t["text"], t.get("min_decline")) for t in c.incentives or ()),
        cooldown_s=c.cooldown_s, budget=c.budget, skus=tuple(c.skus or ()), topic=c.topic, holdout=c.holdout,
        deep_link=content.get("deep_link"), image_url=content.get("image_url"),
    )


def build_index(session: Session, *, venue: Venue, zones: list[Zone]) -> CampaignIndex:
    """The venue's active campaigns by (trigger, zone): what its snapshot carries."""
    campaigns = list_campaigns(session, venue=venue, status="active")
    if not campaigns:
        return CampaignIndex()
    stores = dict(session.execute(select(Store.id, Store.zone_id).where(Store.venue_id == venue.id)).all())
    tz = ZoneInfo(venue.timezone)
    return CampaignIndex(to_rule(c, tz, resolve_targets(c.targets, zones, stores)) for c in campaigns)


# -- policy and preferences -----------------------------------------------------------------------------
def policy_out(venue: Venue) -> schemas.PushPolicy:
    return schemas.PushPolicy.model_validate(venue.push_policy or {})


def policy_of(venue_tz: str, raw: dict[str, Any]) -> Policy:
    p = schemas.PushPolicy.model_validate(raw or {})
    quiet = p.quiet_hours or (None, None)
    return Policy(tz=ZoneInfo(venue_tz), max_per_day=p.max_per_day, max_per_week=p.max_per_week,
                  min_gap_s=p.min_gap_s, quiet_start=_time(quiet[0]), quiet_end=_time(quiet[1]))


def set_policy(session: Session, *, venue: Venue, data: schemas.PushPolicy) -> schemas.PushPolicy:
    venue.push_policy = data.model_dump(mode="json")
    session.flush()
    return policy_out(venue)


def set_preferences(session: Session, *, device: Device, data: schemas.Preferences) -> schemas.Preferences:
    row = session.get(Device, device.id)
    assert row is not None
    row.preferences = {**(row.preferences or {}), "opt_out": sorted(set(data.opt_out))}
    session.flush()
    return schemas.Preferences.model_validate({"opt_out": row.preferences["opt_out"]})
