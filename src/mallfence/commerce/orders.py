"""Click-and-collect orders: the status machine, arrivals at the pickup zone, collection at the counter.

placed → ready → collected, and placed or ready → cancelled. Anything else is refused with what the order is
now: going back (collected → ready), skipping (placed → collected: nobody was told it was ready) or leaving
a final state. Sending the status an order already has is a no-op, so a commerce system may resend.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallfence.commerce import lookup
from mallfence.commerce.models import Order
from mallfence.commerce.schemas import OrderIn, OrderOut, OrderUpdate
from mallfence.devices.models import Device
from mallfence.errors import Conflict, Forbidden, Invalid, Issue, NotFound
from mallfence.staff.models import StaffMember
from mallfence.staff.schemas import ShopperRef, StoreRef
from mallfence.tracking.models import Event
from mallfence.tracking.schemas import ZoneRef
from mallfence.venues.models import Store, Venue, Zone

NEXT = {"placed": ("ready", "cancelled"), "ready": ("collected", "cancelled"), "collected": (), "cancelled": ()}
_RANK = {"placed": 0, "ready": 1, "collected": 2, "cancelled": 2}
PENDING = ("placed", "ready")
# Staff hand an order over only to the shopper whose identity code staff of that store scanned this
# recently: long enough to fetch a parcel from the back room, short enough that a scan from an earlier
# visit (or by another store) does not let anyone collect it.
COLLECT_SCAN_WINDOW_S = 600.0


def check_transition(order_ref: str, current: str, new: str) -> None:
    """Conflict, saying why, unless ``current`` → ``new`` is a step the status machine allows (or no step)."""
    if new == current or new in NEXT[current]:
        return
    if not NEXT[current]:
        raise Conflict(f"order {order_ref!r} is already {current}: it cannot become {new}")
    if _RANK[new] < _RANK[current]:
        raise Conflict(f"order {order_ref!r} is {current}: status cannot go back to {new}")
    raise Conflict(f"order {order_ref!r} is {current}: it must be ready before it is {new}")


def _step(order: Order, status: str, now: datetime) -> None:
    order.status = status
    if status == "ready":
        order.ready_at = now
    elif status == "collected":
        order.collected_at = now
        order.wait_s = round((now - order.arrived_at).total_seconds(), 1) if order.arrived_at else None
    elif status == "cancelled":
        order.cancelled_at = now


def _items(data: OrderIn) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in data.items]


def upsert(session: Session, *, venue: Venue, data: OrderIn) -> tuple[Order, bool, bool]:
    """Create the order or bring it to the state ``data`` describes; (order, created, changed)."""
    shopper = lookup.shopper(session, venue=venue, shopper_id=data.shopper_id, loyalty_id=data.loyalty_id)
    store_id = lookup.stores(session, venue=venue).get(store_id=data.store_id, store=data.store)
    pickup = None
    if data.pickup_zone_id is not None or data.pickup_zone is not None:
        pickup = lookup.zone(session, venue=venue, zone_id=data.pickup_zone_id, zone_ref=data.pickup_zone).id
    now = datetime.now(UTC)
    order = session.scalar(select(Order).where(Order.venue_id == venue.id, Order.external_id == data.external_id)
                           .with_for_update(of=Order))
    if order is None:
        if data.status not in PENDING:
            raise Invalid(Issue(("status",), f"a new order starts placed or ready, not {data.status} (order "
                                             f"{data.external_id!r} is unknown here)"))
        order = Order(venue_id=venue.id, external_id=data.external_id, shopper_id=shopper.id, store_id=store_id,
                      pickup_zone_id=pickup if pickup is not None else _store_zone(session, store_id),
                      status="placed", items=_items(data), ready_by=data.ready_by, placed_at=data.placed_at or now)
        session.add(order)
        if data.status == "ready":
            _step(order, "ready", now)
        session.flush()
        return order, True, True
    if order.shopper_id != shopper.id:
        raise Conflict(f"order {data.external_id!r} belongs to another shopper: an order's shopper never changes")
    if order.store_id != store_id:
        raise Conflict(f"order {data.external_id!r} is for store {order.store_id}, not {store_id}: an order's store "
                       "never changes")
    check_transition(data.external_id, order.status, data.status)
    before = _state(order)
    if order.status in PENDING:  # what the shopper was promised may change until it is collected
        fields = data.model_fields_set
        if "items" in fields:
            order.items = _items(data)
        if "ready_by" in fields:
            order.ready_by = data.ready_by
        if pickup is not None:
            order.pickup_zone_id = pickup
    if data.status != order.status:
        _step(order, data.status, now)
    changed = _state(order) != before
    session.flush()
    return order, False, changed


def update_order(session: Session, *, venue: Venue, order: Order, data: OrderUpdate) -> tuple[Order, bool]:
    """The operator changes status, ready_by or the pickup zone; (order, changed)."""
    before = _state(order)
    if data.status is not None:
        check_transition(order.external_id, order.status, data.status)
    if data.pickup_zone_id is not None:
        order.pickup_zone_id = lookup.zone(session, venue=venue, zone_id=data.pickup_zone_id, zone_ref=None).id
    if "ready_by" in data.model_fields_set:
        order.ready_by = data.ready_by
    if data.status is not None and data.status != order.status:
        _step(order, data.status, datetime.now(UTC))
    session.flush()
    return order, _state(order) != before


def _state(order: Order) -> tuple[object, ...]:
    return order.status, order.items, order.ready_by, order.pickup_zone_id


def _store_zone(session: Session, store_id: int) -> int | None:
    store = session.get(Store, store_id)
    return store.zone_id if store is not None else None


def status_of(session: Session, *, venue: Venue, external_id: str) -> str | None:
    """The status of order ``external_id`` now; None if it is unknown."""
    return session.scalar(select(Order.status).where(Order.venue_id == venue.id, Order.external_id == external_id))


def get(session: Session, *, venue: Venue, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None or order.venue_id != venue.id:
        raise NotFound(f"order {order_id} not found in venue {venue.slug!r}")
    return order


def list_orders(session: Session, *, venue: Venue, status: str | None = None, store_id: int | None = None,
                shopper_id: str | None = None, limit: int = 100) -> list[Order]:
    """Newest first."""
    query = select(Order).where(Order.venue_id == venue.id)
    for column, value in ((Order.status, status), (Order.store_id, store_id), (Order.shopper_id, shopper_id)):
        if value is not None:
            query = query.where(column == value)
    return list(session.scalars(query.order_by(Order.id.desc()).limit(limit)).unique())


def zone_ref(session: Session, zone_id: int | None) -> ZoneRef | None:
    zone = session.get(Zone, zone_id) if zone_id is not None else None
    if zone is None:
        return None
    return ZoneRef(id=zone.id, external_id=zone.external_id, name=zone.name, kind=zone.kind,
                   level=zone.level.ordinal if zone.level is not None else None)


def order_out(session: Session, order: Order) -> OrderOut:
    shopper, store = order.shopper, order.store
    return OrderOut(
        id=order.id, external_id=order.external_id, status=order.status,  # type: ignore[arg-type]
        shopper=ShopperRef(id=shopper.id, loyalty_id=shopper.loyalty_id, display_name=shopper.display_name),
        store=StoreRef(id=store.id, name=store.name, zone_id=store.zone_id),
        pickup_zone=zone_ref(session, order.pickup_zone_id), items=order.items, ready_by=order.ready_by,
        placed_at=order.placed_at, ready_at=order.ready_at, arrived_at=order.arrived_at,
        collected_at=order.collected_at, cancelled_at=order.cancelled_at, wait_s=order.wait_s,
        collected_by=order.collected_by)


def pending(session: Session, *, shopper_id: str, store_id: int | None = None, venue_id: int | None = None,
            status: Iterable[str] = PENDING) -> list[Order]:
    """The shopper's orders not yet collected or cancelled (at one store, or in one venue), oldest first."""
    query = select(Order).where(Order.shopper_id == shopper_id, Order.status.in_(list(status)))
    if store_id is not None:
        query = query.where(Order.store_id == store_id)
    if venue_id is not None:
        query = query.where(Order.venue_id == venue_id)
    return list(session.scalars(query.order_by(Order.id)).unique())


def for_card(session: Session, *, shopper_id: str, store_id: int) -> list[dict[str, Any]]:
    """The customer card's orders: this shopper's pending orders at the scanning staff's store."""
    return [order_out(session, o).model_dump(mode="json", exclude={"shopper", "store"})
            for o in pending(session, shopper_id=shopper_id, store_id=store_id)]


def mark_arrived(session: Session, *, shopper_id: str, zone_ids: Iterable[int], now: datetime) -> list[Order]:
    """The shopper entered ``zone_ids``: their ready orders picked up there have arrived (the latest arrival
    counts, so the wait measured is that of the visit in which they collect)."""
    zones = sorted(set(zone_ids))
    if not zones:
        return []
    orders = list(session.scalars(select(Order).where(Order.shopper_id == shopper_id, Order.status == "ready",
                                                      Order.pickup_zone_id.in_(zones))).unique())
    for order in orders:
        order.arrived_at = now
    session.flush()
    return orders


def _recent_scan(session: Session, order: Order, now: datetime) -> int | None:
    """The id of the latest staff scan of the order's shopper by staff of the order's store, if recent.
    Dated by ``recorded_at`` (the server's clock), not by the device clock scans are placed on."""
    devices = select(Device.id).where(Device.shopper_id == order.shopper_id)
    rows = session.execute(select(Event.id, Event.data).where(
        Event.device_id.in_(devices), Event.kind == "staff_scan",
        Event.recorded_at >= now - timedelta(seconds=COLLECT_SCAN_WINDOW_S)).order_by(Event.id.desc()).limit(50)).all()
    return next((event_id for event_id, data in rows if (data or {}).get("store_id") == order.store_id), None)


def collect(session: Session, *, staff: StaffMember, order_id: int) -> tuple[Order, int]:
    """Staff hand the order over: it must be ready, theirs, and its shopper scanned at their store within
    ``COLLECT_SCAN_WINDOW_S``; (order, the scan that identified the shopper)."""
    order = session.get(Order, order_id, with_for_update={"of": Order})
    if order is None or order.venue_id != staff.venue_id:
        raise NotFound(f"order {order_id} not found")
    if order.store_id != staff.store_id:
        raise Forbidden(f"order {order.external_id!r} is collected at store {order.store_id}; you work at store "
                        f"{staff.store_id}")
    check_transition(order.external_id, order.status, "collected")
    if order.status == "collected":
        raise Conflict(f"order {order.external_id!r} was already collected at "
                       f"{order.collected_at.isoformat(timespec='seconds') if order.collected_at else '?'}")
    now = datetime.now(UTC)
    scan_id = _recent_scan(session, order, now)
    if scan_id is None:
        raise Conflict(f"scan the shopper's identity code first: nobody at store {order.store_id} scanned the "
                       f"shopper of order {order.external_id!r} in the last {COLLECT_SCAN_WINDOW_S / 60:g} minutes")
    claimed = session.execute(update(Order).where(Order.id == order.id, Order.status == "ready")
                              .values(status="collected", collected_at=now, collected_by=staff.id,
                                      wait_s=round((now - order.arrived_at).total_seconds(), 1)
                                      if order.arrived_at else None).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"order {order.external_id!r} was collected by someone else a moment ago")
    session.refresh(order)
    return order, scan_id
