"""Click-and-collect arrivals: a shopper with a ready order enters its pickup zone, staff of the store are told.

``on_events`` is a tracking listener (``tracking.listeners``): it marks the arrival in the transaction that
stores the enter event, and alerts the store's staff websockets once that committed. An order that becomes
ready while its shopper already stands in the pickup zone arrives at that moment (``arrive_if_present``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select

from mallfence.commerce import orders
from mallfence.commerce.models import Order
from mallfence.db import transaction
from mallfence.devices.models import Device
from mallfence.runtime import Runtime
from mallfence.staff import cards
from mallfence.staff.router import alert_store
from mallfence.tracking.listeners import EventBatch
from mallfence.venues.models import Venue

log = logging.getLogger("mallfence.commerce")


def on_events(batch: EventBatch) -> None:
    """Tracking listener: the batch's enters into pickup zones of the shopper's ready orders are arrivals."""
    entered = {e.zone.id: e for e in batch.events if e.kind == "enter" and e.zone is not None}
    if not entered:
        return
    arrived = orders.mark_arrived(batch.session, shopper_id=batch.device.shopper_id, zone_ids=entered,
                                  now=datetime.now(UTC))
    for order in arrived:
        event = entered[order.pickup_zone_id]  # type: ignore[index]
        batch.after_commit.append(partial(alert_arrival, batch.rt, order_id=order.id, device_id=batch.device.id,
                                          event_id=event.id, at=event.at))


def alert_arrival(rt: Runtime, *, order_id: int, device_id: str, event_id: int | None, at: datetime) -> None:
    """Tell the store's staff apps: the order, and the customer card of the shopper who came for it (its
    ``scan_id`` is the enter event's id, nobody scanned them yet; 0 when they were already there)."""
    with rt.sessions() as session:
        order, device = session.get(Order, order_id), session.get(Device, device_id)
        if order is None or device is None:  # deleted in the meantime
            return
        venue = session.get(Venue, order.venue_id)
        assert venue is not None
        card = cards.build(session, rt, device=device, venue=venue, store=order.store, scan_id=event_id or 0,
                           scanned_at=at)
        payload = orders.order_out(session, order).model_dump(mode="json")
        store_id = order.store_id
    alert_store(rt, store_id, "order_arrival", event_id=event_id, order=payload, card=card.model_dump(mode="json"))


def arrive_if_present(rt: Runtime, *, order_id: int) -> bool:
    """After an order became ready (committed): if one of its shopper's devices is inside the pickup zone now,
    that is its arrival; alert the store. Whether it was."""
    with rt.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or order.status != "ready" or order.pickup_zone_id is None:
            return False
        devices = set(session.scalars(select(Device.id).where(Device.shopper_id == order.shopper_id)))
        zone_id = order.pickup_zone_id
    here = sorted(devices.intersection(rt.states.devices_in_zone(zone_id)))
    if not here:
        return False
    now = datetime.now(UTC)
    with transaction(rt.sessions) as session:
        order = session.get(Order, order_id, with_for_update={"of": Order})
        if order is None or order.status != "ready":
            return False
        order.arrived_at = now
    try:
        alert_arrival(rt, order_id=order_id, device_id=here[0], event_id=None, at=now)
    except Exception:  # the arrival is stored; a lost alert must not fail the caller's request
        log.exception("alerting the arrival of order %s failed", order_id)
    return True
