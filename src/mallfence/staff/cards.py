"""The customer card a staff member sees after scanning a shopper's code: who, consent, where, how often.

Facts only from what is stored: presence now, the event log, the shopper's profile, their wishlist (with
the stock of the scanning staff's store) and their pending click-and-collect orders at that store.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallfence.commerce import orders, wishlists
from mallfence.devices.models import Device, Shopper
from mallfence.runtime import Runtime
from mallfence.staff.schemas import (
    Consent,
    CustomerCard,
    DeviceRef,
    ShopperRef,
    StoreRef,
    Visit,
    VisitStats,
)
from mallfence.tracking.models import Event
from mallfence.tracking.schemas import ZoneRef
from mallfence.venues.models import Level, Store, Venue, Zone

RECENT_VISITS = 10
VISIT_DAYS_SCANNED = 20_000  # enter events read to count visit days; a regular's years fit


def _zone_refs(session: Session, ids: list[int]) -> dict[int, ZoneRef]:
    if not ids:
        return {}
    rows = session.execute(select(Zone, Level.ordinal).outerjoin(Level, Level.id == Zone.level_id)
                           .where(Zone.id.in_(ids))).unique().all()
    return {z.id: ZoneRef(id=z.id, external_id=z.external_id, name=z.name, kind=z.kind, level=ordinal)
            for z, ordinal in rows}


def build(session: Session, rt: Runtime, *, device: Device, venue: Venue, store: Store, scan_id: int,
          scanned_at: datetime) -> CustomerCard:
    shopper: Shopper = device.shopper
    device_ids = list(session.scalars(select(Device.id).where(Device.shopper_id == shopper.id)))
    here = sorted(rt.states.get(device.id).inside_zones())
    # The last visits: enter events, each with the exit that closed it (if any), newest first.
    enters = session.execute(select(Event.zone_id, Event.occurred_at, Event.device_id)
                             .where(Event.device_id.in_(device_ids), Event.venue_id == venue.id,
                                    Event.kind == "enter")
                             .order_by(Event.occurred_at.desc()).limit(RECENT_VISITS)).all()
    exits = session.execute(select(Event.zone_id, Event.occurred_at, Event.duration_s, Event.device_id)
                            .where(Event.device_id.in_(device_ids), Event.venue_id == venue.id, Event.kind == "exit",
                                   Event.occurred_at >= min((e.occurred_at for e in enters), default=scanned_at))
                            .order_by(Event.occurred_at)).all()
    refs = _zone_refs(session, sorted({z for z in here} | {e.zone_id for e in enters}))
    visits = []
    for zone_id, entered, dev in enters:
        end = next((x for x in exits if x.zone_id == zone_id and x.device_id == dev and x.occurred_at >= entered),
                   None)
        visits.append(Visit(zone=refs.get(zone_id, ZoneRef(id=zone_id)), entered_at=entered,
                            left_at=end.occurred_at if end else None, duration_s=end.duration_s if end else None))
    # Visit days in the venue's own calendar: a visit at 00:30 local belongs to that local day.
    tz = ZoneInfo(venue.timezone)
    stamps = list(session.scalars(select(Event.occurred_at).where(
        Event.device_id.in_(device_ids), Event.venue_id == venue.id).order_by(Event.occurred_at.desc())
        .limit(VISIT_DAYS_SCANNED)))
    days = {t.astimezone(tz).date() for t in stamps}
    first = session.scalar(select(func.min(Event.occurred_at)).where(Event.device_id.in_(device_ids),
                                                                    Event.venue_id == venue.id))
    consent = Consent.model_validate(device.consent) if device.consent else None
    return CustomerCard(
        scan_id=scan_id, scanned_at=scanned_at, store=StoreRef(id=store.id, name=store.name, zone_id=store.zone_id),
        shopper=ShopperRef(id=shopper.id, loyalty_id=shopper.loyalty_id, display_name=shopper.display_name),
        device=DeviceRef(id=device.id, platform=device.platform, locale=device.locale, app_version=device.app_version),
        consent=consent, here_now=[refs.get(z, ZoneRef(id=z)) for z in here], recent_visits=visits,
        visits=VisitStats(days=len(days), first_seen=first, last_seen=max(stamps, default=None)),
        wishlist=wishlists.for_card(session, shopper_id=shopper.id, store_id=store.id),
        orders=orders.for_card(session, shopper_id=shopper.id, store_id=store.id),
    )
