"""A campaign's funnel, decided → sent → delivered → opened → visited → purchased, and its lift over the
holdout group.

- decided: every decision the campaign took part in (sent, held back by the budget, held out, ...);
- sent: the push went to the outbox; delivered: the app acknowledged it (websocket) or reported it opened
  (FCM accepting a message is not delivery); opened: the app reported the shopper opened it;
- visited: an enter, by any device of the shopper, into one of the campaign's target zones after the
  push and within ``visit_window_h`` (the enter that triggered the push does not count: it came before);
- purchased: a POS purchase by the shopper in that window at a store whose zone is a target (at any store
  of the venue when the targets hold no store).

The holdout group is the decisions the campaign would have sent but held out (reason ``holdout``), chosen
per (campaign, shopper) at random. Lift compares shoppers, the unit the holdout draws: a shopper
converted if any of their pushes (or held-out pushes) in the range was followed by a visit (a purchase).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.analytics.stats import lift
from mallfence.analytics.window import Window
from mallfence.commerce.models import Purchase
from mallfence.delivery.models import Notification
from mallfence.devices.models import Device
from mallfence.engagement import service as campaigns
from mallfence.engagement.models import Campaign, Decision
from mallfence.tracking.models import Event
from mallfence.venues.models import Store, Venue, Zone

HOLDOUT = "holdout"
STAGES = ("decided", "sent", "delivered", "opened", "visited", "purchased")


def _after(stamps: list[datetime], at: datetime, window: timedelta) -> bool:
    """Whether a sorted list of times holds one in (at, at + window]."""
    i = bisect_right(stamps, at)
    return i < len(stamps) and stamps[i] <= at + window


def _group(rows: list[tuple[str, bool, bool]]) -> dict[str, Any]:
    by_shopper: dict[str, list[bool]] = defaultdict(lambda: [False, False])
    for shopper, visited, bought in rows:
        acc = by_shopper[shopper]
        acc[0] |= visited
        acc[1] |= bought
    n = len(by_shopper)
    visited = sum(v for v, _ in by_shopper.values())
    bought = sum(b for _, b in by_shopper.values())
    return {"pushes": len(rows), "shoppers": n, "visited": visited, "purchased": bought,
            "visit_rate": visited / n if n else None, "purchase_rate": bought / n if n else None}


def _lift(t: dict[str, Any], h: dict[str, Any], key: str) -> dict[str, Any]:
    r = lift(t[key], t["shoppers"], h[key], h["shoppers"])
    return {"treatment_rate": r.treatment_rate, "holdout_rate": r.holdout_rate, "difference": r.difference,
            "ci95": list(r.ci95) if r.ci95 else None, "verdict": r.verdict}


def funnel(session: Session, *, venue: Venue, campaign: Campaign, w: Window, visit_window_h: int) -> dict[str, Any]:
    """The campaign's funnel and lift for the decisions taken in the window (see the module doc)."""
    window = timedelta(hours=visit_window_h)
    zones = list(session.scalars(select(Zone).where(Zone.venue_id == venue.id)).unique())
    store_zones = dict(session.execute(select(Store.id, Store.zone_id).where(Store.venue_id == venue.id)).all())
    targets = sorted(campaigns.resolve_targets(campaign.targets, zones, store_zones))
    stores = sorted(s for s, z in store_zones.items() if z in set(targets))
    rows = session.execute(
        select(Decision.shopper_id, Decision.at, Decision.sent, Decision.reason, Decision.opened_at,
               Notification.delivered_at)
        .outerjoin(Notification, Notification.id == Decision.notification_id)
        .where(Decision.campaign_id == campaign.id, Decision.at >= w.lo, Decision.at < w.hi)).all()
    shoppers = {r[0] for r in rows}
    visits: dict[str, list[datetime]] = defaultdict(list)
    if targets and shoppers:
        q = (select(Device.shopper_id, Event.occurred_at).join(Device, Device.id == Event.device_id)
             .where(Event.zone_id.in_(targets), Event.kind == "enter", Event.occurred_at > w.lo,
                    Event.occurred_at <= w.hi + window).order_by(Event.occurred_at))
        for shopper, at in session.execute(q).all():
            if shopper in shoppers:
                visits[shopper].append(at)
    buys: dict[str, list[datetime]] = defaultdict(list)
    if shoppers:
        q = select(Purchase.shopper_id, Purchase.purchased_at).where(
            Purchase.venue_id == venue.id, Purchase.purchased_at > w.lo, Purchase.purchased_at <= w.hi + window)
        if stores:
            q = q.where(Purchase.store_id.in_(stores))
        for shopper, at in session.execute(q.order_by(Purchase.purchased_at)).all():
            if shopper in shoppers:
                buys[shopper].append(at)
    counts = dict.fromkeys(STAGES, 0)
    treated: list[tuple[str, bool, bool]] = []
    held: list[tuple[str, bool, bool]] = []
    for shopper, at, sent, reason, opened_at, delivered_at in rows:
        counts["decided"] += 1
        visited, bought = _after(visits[shopper], at, window), _after(buys[shopper], at, window)
        if reason == HOLDOUT:
            held.append((shopper, visited, bought))
        if not sent:
            continue
        treated.append((shopper, visited, bought))
        counts["sent"] += 1
        counts["delivered"] += delivered_at is not None or opened_at is not None
        counts["opened"] += opened_at is not None
        counts["visited"] += visited
        counts["purchased"] += bought
    t, h = _group(treated), _group(held)
    both = {s for s, _, _ in treated} & {s for s, _, _ in held}
    return {
        "campaign_id": campaign.id, "name": campaign.name, "from": w.lo.isoformat(), "to": w.hi.isoformat(),
        "visit_window_h": visit_window_h, "target_zone_ids": targets,
        "purchase_at": "targeted stores" if stores else "any store of the venue",
        "stages": [{"stage": s, "count": counts[s]} for s in STAGES],
        "groups": {"treatment": t, "holdout": h},
        "lift": {"visit": _lift(t, h, "visited"), "purchase": _lift(t, h, "purchased")},
        "holdout_share": campaign.holdout,
        "shoppers_in_both_groups": len(both),  # the holdout share changed within the range
    }
