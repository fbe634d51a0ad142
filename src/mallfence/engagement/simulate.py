"""Dry runs: what a campaign would have done on a recorded walk (a device's stored events) or a made-up one.

The same matching and budget rules as live, on a copy of the shopper's budget (the week before the
walk) or an empty one; nothing is written, nothing is sent. Drafts can be tried before they go live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.devices.models import Device
from mallfence.engagement import schemas
from mallfence.engagement import segments as seg
from mallfence.engagement import service as svc
from mallfence.engagement.matching import CampaignIndex, Profile, Trigger, match
from mallfence.engagement.models import Campaign, Decision
from mallfence.engagement.rules import Audience, Ledger, decide
from mallfence.errors import Invalid, Issue, NotFound
from mallfence.tracking.models import Event
from mallfence.venues.models import Store, Venue, Zone

MAX_EVENTS = 5000
KINDS = ("enter", "dwell", "exit", "qr_scan")


def _walk(session: Session, venue: Venue, data: schemas.SimulateIn) -> tuple[list[Trigger], Device | None]:
    zones = {z.id: z for z in session.scalars(select(Zone).where(Zone.venue_id == venue.id)).unique()}
    store_of = dict(session.execute(select(Store.zone_id, Store.id).where(Store.venue_id == venue.id)).all())
    if data.events is not None:
        unknown = [i for i, e in enumerate(data.events) if e.zone_id not in zones]
        if unknown:
            raise Invalid([Issue(("events", i, "zone_id"), f"zone {data.events[i].zone_id} is not in venue "
                                 f"{venue.slug!r}") for i in unknown])
        rows = [(i, e.kind, e.zone_id, e.at, e.duration_s) for i, e in enumerate(sorted(data.events,
                                                                                         key=lambda e: e.at))]
        device = None
    else:
        device = session.get(Device, data.device_id)
        if device is None or device.venue_id != venue.id:
            raise NotFound(f"device {data.device_id!r} not found in venue {venue.slug!r}")
        q = select(Event.id, Event.kind, Event.zone_id, Event.occurred_at, Event.duration_s).where(
            Event.device_id == device.id, Event.kind.in_(KINDS))
        if data.since is not None:
            q = q.where(Event.occurred_at >= data.since)
        if data.until is not None:
            q = q.where(Event.occurred_at < data.until)
        rows = list(session.execute(q.order_by(Event.occurred_at, Event.id).limit(MAX_EVENTS)).all())
    tz = ZoneInfo(venue.timezone)
    seen: set[tuple[int, object]] = set()
    triggers = []
    for ev_id, kind, zone_id, at, duration in rows:
        if zone_id is None:
            continue
        trig = Trigger(kind, zone_id, at.timestamp(), ev_id, duration, store_of.get(zone_id))
        triggers.append(trig)
        if kind == "enter" and (zone_id, at.astimezone(tz).date()) not in seen:
            seen.add((zone_id, at.astimezone(tz).date()))
            triggers.append(Trigger("first_visit", zone_id, trig.at, ev_id, None, trig.store_id))
    return triggers, device


def _shopper(session: Session, venue: Venue, device: Device | None, data: schemas.SimulateIn,
             start: float) -> tuple[Profile, Audience, Ledger]:
    if device is None:
        return (Profile("simulated", data.segment, data.decline, data.language),
                Audience(marketing_consent=data.marketing_consent), Ledger())
    tz = ZoneInfo(venue.timezone)
    day = datetime.fromtimestamp(start, tz).date()
    stamps = session.scalars(select(Event.occurred_at).where(Event.device_id == device.id,
                                                             Event.occurred_at < datetime.fromtimestamp(start, UTC)))
    verdict = seg.classify({t.astimezone(tz).date() for t in stamps}, [], day)
    ledger = Ledger()
    for at, category, campaign_id in session.execute(select(Decision.at, Decision.category, Decision.campaign_id).where(
            Decision.shopper_id == device.shopper_id, Decision.sent.is_(True),
            Decision.at >= datetime.fromtimestamp(start, UTC) - timedelta(days=7),
            Decision.at < datetime.fromtimestamp(start, UTC)).order_by(Decision.at)):
        ledger.record(at.timestamp(), category, campaign_id)
    consent = device.consent or {}
    return (Profile(device.shopper_id, data.segment or verdict.segment, data.decline or verdict.decline,
                    data.language or (device.locale or "").split("-")[0] or None),
            Audience(marketing_consent=consent.get("marketing") is True,
                     opt_out=frozenset((device.preferences or {}).get("opt_out") or ())), ledger)


def simulate(session: Session, *, campaign: Campaign, data: schemas.SimulateIn) -> schemas.SimulateOut:
    """The campaign's decisions along the walk, as they would have been."""
    venue = session.get(Venue, campaign.venue_id)
    assert venue is not None
    zones = list(session.scalars(select(Zone).where(Zone.venue_id == venue.id)).unique())
    stores = dict(session.execute(select(Store.id, Store.zone_id).where(Store.venue_id == venue.id)).all())
    tz = ZoneInfo(venue.timezone)
    rules = [svc.to_rule(campaign, tz, svc.resolve_targets(campaign.targets, zones, stores))]
    if data.with_others:
        rules += [svc.to_rule(c, tz, svc.resolve_targets(c.targets, zones, stores))
                  for c in svc.list_campaigns(session, venue=venue, status="active") if c.id != campaign.id]
    index = CampaignIndex(rules)
    triggers, device = _walk(session, venue, data)
    policy = svc.policy_of(venue.timezone, venue.push_policy)
    steps: list[schemas.SimStep] = []
    if not triggers:
        return schemas.SimulateOut(campaign_id=campaign.id, triggers=0, sent=0, steps=[])
    profile, audience, ledger = _shopper(session, venue, device, data, triggers[0].at)
    sends = campaign.sends
    for trig in triggers:
        spent = campaign.budget is not None and sends >= campaign.budget
        exhausted = frozenset({campaign.id}) if spent else frozenset()
        candidates, skipped = match(trig, index, profile, exhausted)
        at = datetime.fromtimestamp(trig.at, UTC)
        steps += [schemas.SimStep(at=at, trigger=trig.kind, zone_id=trig.zone_id, campaign_id=s.rule.id, sent=False,
                                  reason=s.reason, detail=s.detail, title=None) for s in skipped]
        for v in decide(candidates, audience, ledger, policy, trig.at):
            c = v.candidate
            sent, reason = v.sent, v.reason
            if sent and c.explain.get("holdout"):
                sent, reason = False, "holdout"
                ledger.forget(trig.at, c.campaign_id)
            sends += int(sent and c.campaign_id == campaign.id)
            steps.append(schemas.SimStep(at=at, trigger=trig.kind, zone_id=trig.zone_id, campaign_id=c.campaign_id,
                                         sent=sent, reason=reason, detail={**c.explain, **v.detail},
                                         title=c.title))
    mine = [s for s in steps if s.campaign_id == campaign.id]
    return schemas.SimulateOut(campaign_id=campaign.id, triggers=len(triggers), sent=sum(s.sent for s in mine),
                               steps=steps if data.with_others else mine)
