"""Push candidates from commerce: what a shopper's wishlist and orders make worth telling them, per batch of
events. Nothing here sends: the decision engine weighs these against its budget and decides.

On entering the venue (a zone of kind ``venue``): ``wishlist_in_stock`` per saved product in stock or low
somewhere now (the nearest such store from where they came in), and ``order_ready`` per ready order. On
entering a store: ``wishlist_reminder`` per saved product that store has. Dedupe keys hold the shopper (or
the order), the product and store, and the venue-local day of the event, whose time is the device's: a
replayed batch gives the same keys, so it never sends twice, and the next day may remind again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.commerce import orders, wishlists
from mallfence.commerce.models import StockLevel, WishlistItem
from mallfence.commerce.nearby import Spot, origin_spot, walk_hint, walking_many
from mallfence.commerce.service import AVAILABLE
from mallfence.engagement.candidates import PushCandidate
from mallfence.errors import Invalid
from mallfence.spatial.projection import LocalProjection
from mallfence.tracking.listeners import EventBatch
from mallfence.tracking.schemas import EventOut
from mallfence.venues.models import Level, Store, Venue, Zone

MAX_WISHLIST = 5  # per trigger, the newest saves available (several make one digest push)
PRIORITY = {"order_ready": 100, "wishlist_reminder": 50, "wishlist_in_stock": 30}
TTL_S = {"order_ready": 4 * 3600.0, "wishlist_reminder": 900.0, "wishlist_in_stock": 1800.0}


@dataclass(frozen=True, slots=True)
class _Place:
    store_id: int
    store: str
    level: int | None
    level_name: str | None
    area: shapely.Geometry | None  # WGS84


def candidates(batch: EventBatch) -> list[PushCandidate]:
    """The commerce candidates of a batch of events (read-only: it queries, it writes nothing)."""
    enters = [e for e in batch.events if e.kind == "enter" and e.zone is not None and e.zone.kind in ("venue", "store")]
    if not enters:
        return []
    session, shopper_id = batch.session, batch.device.shopper_id
    venue = session.get(Venue, batch.device.venue_id)
    if venue is None:
        return []
    tz = ZoneInfo(venue.timezone)
    saved = wishlists.items(session, shopper_id=shopper_id)
    out: list[PushCandidate] = []
    for event in enters:
        day = event.at.astimezone(tz).date().isoformat()
        if event.zone.kind == "venue":  # type: ignore[union-attr]
            out += _in_stock(session, venue, shopper_id, saved, event, day, batch.positions)
            out += _ready(session, venue, shopper_id, event, day)
        else:
            out += _reminders(session, venue, shopper_id, saved, event, day)
    return out


def _places(session: Session, venue: Venue, product_ids: Sequence[int],
            store_id: int | None = None) -> list[tuple[StockLevel, _Place]]:
    """Available stock of these products (in one store, or the venue), with where each store is."""
    query = (select(StockLevel, Store.name, Zone.area, Level.ordinal, Level.name)
             .join(Store, Store.id == StockLevel.store_id).outerjoin(Zone, Zone.id == Store.zone_id)
             .outerjoin(Level, Level.id == Zone.level_id)
             .where(StockLevel.venue_id == venue.id, StockLevel.product_id.in_(product_ids),
                    StockLevel.level.in_(AVAILABLE)))
    if store_id is not None:
        query = query.where(StockLevel.store_id == store_id)
    places: dict[int, _Place] = {}
    out = []
    for row, name, area, ordinal, level_name in session.execute(query).unique():
        if row.store_id not in places:
            places[row.store_id] = _Place(row.store_id, name, ordinal, level_name, area)
        out.append((row, places[row.store_id]))
    return out


def _where(positions: dict[int, tuple[float, float, int | None]], venue: Venue, event: EventOut) -> Spot | None:
    known = positions.get(event.id)  # the fix behind the event (held for this batch, stored only with consent)
    if known is None:
        return None
    try:
        return origin_spot(venue, lon=known[0], lat=known[1], floor=known[2])
    except Invalid:  # a fix far outside the venue (ingest refuses those): no distance rather than no batch
        return None


def _news(name: str, row: StockLevel, where: str) -> str:
    return f"Only {row.quantity} left of {name} {where}" if row.level == "low" else f"{name} is in stock {where}"


def _in_stock(session: Session, venue: Venue, shopper_id: str, saved: list[WishlistItem], event: EventOut,
              day: str, positions: dict[int, tuple[float, float, int | None]]) -> list[PushCandidate]:
    if not saved:
        return []
    spot = _where(positions, venue, event)
    found = _places(session, venue, [s.product_id for s in saved])
    stores = list({place.store_id: place for _, place in found}.values())
    far = dict(zip([p.store_id for p in stores], walking_many(
        spot, [p.area for p in stores], [p.level for p in stores], LocalProjection(venue.anchor_lon, venue.anchor_lat)),
        strict=True)) if spot is not None else {}
    best: dict[int, tuple[float, StockLevel, _Place]] = {}
    for row, place in found:
        distance = far.get(place.store_id)
        distance = 1e9 if distance is None else distance  # no position or no zone: after every known one
        if row.product_id not in best or (distance, place.store) < (best[row.product_id][0],
                                                                     best[row.product_id][2].store):
            best[row.product_id] = (distance, row, place)
    out: list[PushCandidate] = []
    for item in saved:
        if item.product_id not in best or len(out) == MAX_WISHLIST:
            continue
        distance, row, place = best[item.product_id]
        product = item.product
        where = walk_hint(place.level_name, distance if distance < 1e9 else None) or place.level_name
        body = _news(product.name, row, f"at {place.store}") + (f" ({where})" if where else "")
        out.append(_candidate("wishlist_in_stock", title=f"{product.name} is in stock", body=body,
                              key=f"wishlist-in-stock:{shopper_id}:{product.sku}:{place.store_id}:{day}",
                              sku=product.sku, image_url=product.image_url, store_id=place.store_id, event=event,
                              explain={"stock_level": row.level, "quantity": row.quantity,
                                       "distance_m": round(distance, 1) if distance < 1e9 else None}))
    return _digest(out, shopper_id, day, f"{len(out)} items on your wishlist are in stock")


def _reminders(session: Session, venue: Venue, shopper_id: str, saved: list[WishlistItem], event: EventOut,
               day: str) -> list[PushCandidate]:
    store = session.scalar(select(Store).where(Store.zone_id == event.zone.id)) if saved else None  # type: ignore[union-attr]
    if store is None:
        return []
    here = {row.product_id: row for row, _ in _places(session, venue, [s.product_id for s in saved], store.id)}
    out: list[PushCandidate] = []
    for item in saved:
        row = here.get(item.product_id)
        if row is None or len(out) == MAX_WISHLIST:
            continue
        product = item.product
        out.append(_candidate("wishlist_reminder", title=f"{product.name} is here",
                              body=_news(product.name, row, f"here at {store.name}") + ": it is on your wishlist",
                              key=f"wishlist-reminder:{shopper_id}:{product.sku}:{store.id}:{day}", sku=product.sku,
                              image_url=product.image_url, store_id=store.id, event=event,
                              explain={"stock_level": row.level, "quantity": row.quantity}))
    return _digest(out, shopper_id, day, f"{len(out)} items on your wishlist are here at {store.name}")


def _digest(items: list[PushCandidate], shopper_id: str, day: str, title: str) -> list[PushCandidate]:
    """Several wishlist items at once make one push listing them, not one push each (the budget would send one
    and hold the rest back: the shopper would hear of one item only)."""
    if len(items) < 2:
        return items
    first = items[0]
    shown = "; ".join(c.body for c in items[:3]) + (f"; and {len(items) - 3} more" if len(items) > 3 else "")
    skus = tuple(sku for c in items for sku in c.skus)
    stores = {c.store_id for c in items}
    return [PushCandidate(
        kind=first.kind, category=first.category, title=title, body=shown,
        dedupe_key=f"{first.kind.replace('_', '-')}:{shopper_id}:{day}:{'+'.join(sorted(skus))}",
        priority=first.priority, data={"type": first.kind, "skus": ",".join(skus)}, image_url=first.image_url,
        ttl_s=first.ttl_s, topic=first.topic, skus=skus, store_id=stores.pop() if len(stores) == 1 else None,
        explain={**{k: v for k, v in first.explain.items() if k in ("trigger", "event_id")},
                 "items": [{"sku": c.skus[0], "store_id": c.store_id, **{k: v for k, v in c.explain.items()
                                                                         if k not in ("trigger", "event_id")}}
                           for c in items]})]


def _ready(session: Session, venue: Venue, shopper_id: str, event: EventOut, day: str) -> list[PushCandidate]:
    out = []
    for order in orders.pending(session, shopper_id=shopper_id, venue_id=venue.id, status=("ready",)):
        zone = orders.zone_ref(session, order.pickup_zone_id)
        level = session.scalar(select(Level.name).where(Level.venue_id == venue.id, Level.ordinal == zone.level)) \
            if zone is not None and zone.level is not None else None
        where = ", ".join(p for p in (zone.name if zone else order.store.name, level) if p)
        out.append(PushCandidate(
            kind="order_ready", category="service", title="Your order is ready",
            body=f"Order {order.external_id} is ready to collect at {where}",
            dedupe_key=f"order-ready:{order.id}:{day}", priority=PRIORITY["order_ready"],
            data={"type": "order_ready", "order_id": str(order.id), "external_id": order.external_id,
                  "store_id": str(order.store_id), "pickup_zone_id": str(order.pickup_zone_id or "")},
            ttl_s=TTL_S["order_ready"], topic=None, store_id=order.store_id,
            explain={"trigger": "venue_enter", "event_id": event.id, "order_id": order.id,
                     "ready_at": order.ready_at.isoformat() if order.ready_at else None}))
    return out


def _candidate(kind: str, *, title: str, body: str, key: str, sku: str, image_url: str | None, store_id: int,
               event: EventOut, explain: dict[str, object]) -> PushCandidate:
    return PushCandidate(
        kind=kind, category="wishlist", title=title, body=body, dedupe_key=key, priority=PRIORITY[kind],
        data={"type": kind, "sku": sku, "store_id": str(store_id)}, image_url=image_url, ttl_s=TTL_S[kind],
        topic="wishlist", skus=(sku,), store_id=store_id,
        explain={"trigger": f"{event.zone.kind}_enter", "event_id": event.id, **explain})  # type: ignore[union-attr]
