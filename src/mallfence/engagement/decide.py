"""The engagement listener: zone events in, decisions and pushes out, in the events' own transaction.

For each stored event that a campaign listens to (or that commerce has something to say about), it
reads what the rules need (the shopper's segment, consent, opt-outs, last week's pushes, spent budgets),
runs matching and the budget, and writes every verdict to the decision log; a sent verdict also writes
its notification to the outbox. All of it commits with the events, or none of it does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mallfence import metrics
from mallfence.delivery import service as delivery
from mallfence.devices.models import Device
from mallfence.devices.models import Shopper as Shopper_
from mallfence.engagement import segments as seg
from mallfence.engagement.candidates import PushCandidate
from mallfence.engagement.matching import CampaignIndex, Profile, Skipped, Trigger, match
from mallfence.engagement.models import Campaign, Decision, ShopperSegment
from mallfence.engagement.rules import WEEK_S, Audience, Ledger, Verdict, decide
from mallfence.tracking.listeners import EventBatch
from mallfence.tracking.models import Event
from mallfence.tracking.schemas import EventOut
from mallfence.venues.snapshot import VenueSnapshot

BUDGET = "campaign_budget"
DUPLICATE = "duplicate"
HOLDOUT = "holdout"
HISTORY_DAYS = 400  # visit days read to place a shopper in a segment


@dataclass(slots=True)
class Shopper:
    profile: Profile
    audience: Audience
    ledger: Ledger


def _triggers(session: Session, batch: EventBatch, index: CampaignIndex) -> list[tuple[EventOut, Trigger]]:
    out = []
    zones = batch.snapshot.zones
    for e in batch.events:
        if e.zone is None or e.kind == "staff_scan":
            continue
        info = zones.get(e.zone.id)
        store_id = info.store_id if info else None
        trig = Trigger(e.kind, e.zone.id, e.at.timestamp(), e.id, e.duration_s, store_id)
        out.append((e, trig))
        if e.kind == "enter" and index.listening("first_visit", e.zone.id) and _first_today(session, batch, e):
            out.append((e, Trigger("first_visit", e.zone.id, trig.at, e.id, None, store_id)))
    return out


def _first_today(session: Session, batch: EventBatch, e: EventOut) -> bool:
    tz = ZoneInfo(batch.snapshot.timezone)
    midnight = datetime.combine(e.at.astimezone(tz).date(), datetime.min.time(), tz)
    devices = select(Device.id).where(Device.shopper_id == batch.device.shopper_id)
    earlier = session.scalar(select(Event.id).where(
        Event.device_id.in_(devices), Event.zone_id == e.zone.id, Event.kind == "enter",  # type: ignore[union-attr]
        Event.occurred_at >= midnight, Event.occurred_at < e.at).limit(1))
    return earlier is None


def segment_of(session: Session, *, shopper_id: str, venue_id: int, tz: ZoneInfo, today: date,
               spend: Callable[[Session, str, date], list[tuple[date, float]]] | None = None) -> ShopperSegment:
    """The shopper's segment for ``today`` (venue time): stored, or computed now and stored."""
    row = session.get(ShopperSegment, shopper_id)
    if row is not None and row.as_of == today:
        return row
    since = datetime.combine(today - timedelta(days=HISTORY_DAYS), datetime.min.time(), tz)
    devices = select(Device.id).where(Device.shopper_id == shopper_id)
    stamps = session.scalars(select(Event.occurred_at).where(
        Event.device_id.in_(devices), Event.venue_id == venue_id, Event.occurred_at >= since))
    days = {t.astimezone(tz).date() for t in stamps}
    verdict = seg.classify(days, spend(session, shopper_id, today) if spend else [], today)
    if row is None:
        row = ShopperSegment(shopper_id=shopper_id, venue_id=venue_id)
        session.add(row)
    row.segment, row.decline, row.explain, row.as_of = verdict.segment, verdict.decline, verdict.explain, today
    row.computed_at = datetime.now(UTC)
    session.flush()
    return row


def recompute_segments(session: Session, *, venue_id: int, tz: ZoneInfo, today: date,
                       spend: Callable[[Session, str, date], list[tuple[date, float]]] | None = None) -> dict[str, int]:
    """Every shopper of the venue placed for ``today`` (the nightly job); counts per segment."""
    counts: dict[str, int] = defaultdict(int)
    ids = list(session.scalars(select(Shopper_.id).where(Shopper_.venue_id == venue_id)))
    for shopper_id in ids:
        counts[segment_of(session, shopper_id=shopper_id, venue_id=venue_id, tz=tz, today=today,
                          spend=spend).segment] += 1
    return dict(counts)


def _shopper(session: Session, device: Device, snapshot: VenueSnapshot, now: float,
             spend: Callable[[Session, str, date], list[tuple[date, float]]] | None) -> Shopper:
    tz = snapshot.policy.tz
    segment = segment_of(session, shopper_id=device.shopper_id, venue_id=device.venue_id, tz=tz,
                         today=datetime.fromtimestamp(now, tz).date(), spend=spend)
    language = (device.locale or "").split("-")[0].lower() or None
    consent = device.consent or {}
    prefs = device.preferences or {}
    since = datetime.fromtimestamp(now - WEEK_S, UTC)
    sent = session.execute(select(Decision.at, Decision.category, Decision.campaign_id).where(
        Decision.shopper_id == device.shopper_id, Decision.sent.is_(True), Decision.at >= since)
        .order_by(Decision.at)).all()
    ledger = Ledger()
    for at, category, campaign_id in sent:
        ledger.record(at.timestamp(), category, campaign_id)
    return Shopper(Profile(device.shopper_id, segment.segment, segment.decline, language),
                   Audience(marketing_consent=consent.get("marketing") is True,
                            opt_out=frozenset(prefs.get("opt_out") or ())), ledger)


def _exhausted(session: Session, index: CampaignIndex, triggers: Sequence[Trigger]) -> frozenset[int]:
    ids = {r.id for t in triggers for r in index.listening(t.kind, t.zone_id) if r.budget is not None}
    if not ids:
        return frozenset()
    spent = select(Campaign.id).where(Campaign.id.in_(ids), Campaign.sends >= Campaign.budget)
    return frozenset(session.scalars(spent))


def on_events(batch: EventBatch) -> None:
    """Tracking listener: decide the pushes the batch's events trigger.

    Besides campaigns, ``rt.push_sources`` (commerce: wishlists, orders) add candidates per event
    (``explain["event_id"]``), and ``rt.out_of_stock`` lets offers naming products check the store's stock.
    """
    with metrics.timed("decision"):
        _decide_batch(batch)


def _decide_batch(batch: EventBatch) -> None:
    index = batch.snapshot.campaigns
    extra: dict[int | None, list[PushCandidate]] = defaultdict(list)
    for source in batch.rt.push_sources:
        for c in source(batch):
            extra[c.explain.get("event_id")].append(c)  # type: ignore[arg-type]
    if not index.rules and not extra:
        return
    session = batch.session
    triggers = _triggers(session, batch, index)
    triggers = [(e, t) for e, t in triggers if index.listening(t.kind, t.zone_id) or extra.get(e.id)]
    if not triggers:
        return
    device = session.get(Device, batch.device.id)
    assert device is not None
    shopper = _shopper(session, device, batch.snapshot, triggers[0][1].at, batch.rt.spend)
    exhausted = _exhausted(session, index, [t for _, t in triggers])
    sent_any = False
    handled: set[int] = set()
    # Without marketing consent a shopper's movements are not looked at for marketing at all: no campaign
    # is matched and nothing about it is recorded; service pushes (their orders) still go.
    marketing = shopper.audience.marketing_consent
    for event, trig in triggers:
        candidates, skipped = match(trig, index, shopper.profile, exhausted) if marketing else ([], [])
        if event.id not in handled:  # commerce speaks once per event, alongside its first trigger
            candidates += [c for c in extra.get(event.id, []) if marketing or c.category != "marketing"]
            handled.add(event.id)
        if not candidates and not skipped:
            continue
        verdicts = decide(candidates, shopper.audience, shopper.ledger, batch.snapshot.policy, trig.at,
                          out_of_stock=_stock_check(batch), suspect=event.flags or ())
        sent_any |= _record(session, device, trig, skipped, verdicts, shopper.ledger)
    if sent_any:
        batch.after_commit.append(batch.rt.wake_dispatcher)


def _stock_check(batch: EventBatch) -> Callable[[int, Sequence[str]], set[str]] | None:
    check = batch.rt.out_of_stock
    if check is None:
        return None
    return lambda store_id, skus: check(batch.session, store_id, skus)


def _record(session: Session, device: Device, trig: Trigger, skipped: Sequence[Skipped],
            verdicts: Sequence[Verdict], ledger: Ledger) -> bool:
    """Write the trigger's decisions (and the notifications of sent ones); True if anything was sent."""
    at = datetime.fromtimestamp(trig.at, UTC)
    base = dict(venue_id=device.venue_id, device_id=device.id, shopper_id=device.shopper_id, event_id=trig.event_id,
                trigger=trig.kind, zone_id=trig.zone_id, at=at)
    for s in skipped:
        session.add(Decision(**base, campaign_id=s.rule.id, kind="campaign", category="marketing", sent=False,
                             reason=s.reason, detail=s.detail, dedupe_key=f"cmp:{s.rule.id}:{device.shopper_id}:"
                             f"{trig.event_id}"))
    sent_any = False
    for v in verdicts:
        c = v.candidate
        sent, reason, detail = v.sent, v.reason, {**c.explain, **v.detail}
        note = None
        if sent and c.explain.get("holdout"):  # would have gone: the control group the campaign's lift is measured on
            sent, reason = False, HOLDOUT
            ledger.forget(trig.at, c.campaign_id)
        if sent and c.campaign_id is not None and not _spend(session, c.campaign_id):
            sent, reason = False, BUDGET  # another replica took the last unit a moment ago
        if sent:
            note = delivery.enqueue(session, venue_id=device.venue_id, device_id=device.id, dedupe_key=c.dedupe_key,
                                    title=c.title, body=c.body, category=c.category, ttl_s=int(c.ttl_s),
                                    data={**c.data, "kind": c.kind}, deep_link=c.deep_link,
                                    collapse_key=f"campaign-{c.campaign_id}" if c.campaign_id else c.kind)
            if note is None:
                sent, reason = False, DUPLICATE
            else:
                session.flush()
                sent_any = True
        session.add(Decision(**base, campaign_id=c.campaign_id, kind=c.kind, category=c.category, sent=sent,
                             reason=reason, detail=detail, dedupe_key=c.dedupe_key,
                             notification_id=note.id if note is not None else None))
    return sent_any


def _spend(session: Session, campaign_id: int) -> bool:
    """Count one send against the campaign; False when its budget is already spent."""
    done = session.execute(update(Campaign).where(
        Campaign.id == campaign_id, or_(Campaign.budget.is_(None), Campaign.sends < Campaign.budget))
        .values(sends=Campaign.sends + 1))
    return bool(done.rowcount)  # type: ignore[attr-defined]

