"""Purchases the POS reports: stored once per receipt, in exact minor units, read back per shopper and period."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mallfence.commerce import lookup
from mallfence.commerce.models import Purchase
from mallfence.commerce.schemas import PurchaseIn, PurchaseOut
from mallfence.devices.models import Shopper
from mallfence.engagement.models import ShopperSegment
from mallfence.errors import Conflict, Invalid, Issue
from mallfence.venues.models import Venue

# ISO 4217 minor units that are not 2 (cents): where a "49.90" would be a mistake, not a price.
_EXPONENT = {**dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                              "VND", "VUV", "XAF", "XOF", "XPF"), 0),
             **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3)}
SPEND_DAYS = 400  # as far back as segments read visits
MAX_FUTURE_S = 300.0  # a POS clock further ahead than this is broken; the sale would sort wrongly


def exponent(currency: str) -> int:
    return _EXPONENT.get(currency, 2)


def to_minor(amount: Decimal, currency: str, loc: tuple[str | int, ...]) -> int:
    """``amount`` in the currency's minor unit; Invalid if it has more decimals than the currency has."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise Invalid(Issue(loc, f"{amount} has more decimals than {currency} has ({exponent(currency)})"))
    return int(scaled)


def from_minor(minor: int, currency: str) -> str:
    return str(Decimal(minor).scaleb(-exponent(currency)))


def _items(data: PurchaseIn) -> list[dict[str, object]]:
    issues, items = [], []
    for i, item in enumerate(data.items):
        try:
            items.append({"sku": item.sku, "qty": item.qty,
                          "price_minor": to_minor(item.price, data.currency, ("items", i, "price"))})
        except Invalid as exc:
            issues += exc.issues
    if issues:
        raise Invalid(issues)
    return items


def record(session: Session, *, venue: Venue, data: PurchaseIn) -> tuple[Purchase, bool]:
    """Store the purchase; (purchase, duplicate). The same receipt again changes nothing; a receipt id
    reused for a different sale is a Conflict."""
    shopper = lookup.shopper(session, venue=venue, shopper_id=data.shopper_id, loyalty_id=data.loyalty_id)
    store_id = lookup.stores(session, venue=venue).get(store_id=data.store_id, store=data.store)
    amount = to_minor(data.amount, data.currency, ("amount",))
    items = _items(data)
    if data.purchased_at > datetime.now(UTC) + timedelta(seconds=MAX_FUTURE_S):
        raise Invalid(Issue(("purchased_at",), f"{data.purchased_at.isoformat()} is in the future (POS clock wrong?)"))
    existing = session.scalar(select(Purchase).where(Purchase.venue_id == venue.id,
                                                     Purchase.external_id == data.external_id))
    if existing is not None:
        same = (existing.shopper_id, existing.store_id, existing.amount_minor, existing.currency, existing.items,
                existing.purchased_at) == (shopper.id, store_id, amount, data.currency, items, data.purchased_at)
        if not same:
            raise Conflict(f"purchase {data.external_id!r} is already stored with different contents: a receipt id "
                           "names one sale")
        return existing, True
    purchase = Purchase(venue_id=venue.id, external_id=data.external_id, shopper_id=shopper.id, store_id=store_id,
                        amount_minor=amount, currency=data.currency, items=items, purchased_at=data.purchased_at)
    session.add(purchase)
    # A purchase may move the shopper into (or out of) high value: place them again at their next decision.
    session.execute(delete(ShopperSegment).where(ShopperSegment.shopper_id == shopper.id))
    session.flush()
    return purchase, False


def purchases_of(session: Session, *, shopper_id: str, since: datetime | None = None,
                 until: datetime | None = None) -> list[Purchase]:
    """The shopper's purchases with ``since <= purchased_at < until`` (either end open), oldest first: what
    segments (new, returning, lapsing, high value) are computed from."""
    query = select(Purchase).where(Purchase.shopper_id == shopper_id)
    if since is not None:
        query = query.where(Purchase.purchased_at >= since)
    if until is not None:
        query = query.where(Purchase.purchased_at < until)
    return list(session.scalars(query.order_by(Purchase.purchased_at, Purchase.id)))


def amount(purchase: Purchase) -> Decimal:
    """What was paid, in currency units, exactly."""
    return Decimal(purchase.amount_minor).scaleb(-exponent(purchase.currency))


def spend(session: Session, shopper_id: str, today: date, days: int = SPEND_DAYS) -> list[tuple[date, float]]:
    """(venue-local day, amount in currency units) of the shopper's purchases from ``days`` before ``today``
    to its end: what segments weigh (high value). Positional, as ``engagement.decide.segment_of`` calls it.
    A venue trades in one currency; amounts are not converted."""
    venue = session.scalar(select(Venue).join(Shopper, Shopper.venue_id == Venue.id).where(Shopper.id == shopper_id))
    if venue is None:
        return []
    tz = ZoneInfo(venue.timezone)
    since = datetime.combine(today - timedelta(days=days), time.min, tz)
    until = datetime.combine(today + timedelta(days=1), time.min, tz)
    return [(p.purchased_at.astimezone(tz).date(), float(amount(p)))
            for p in purchases_of(session, shopper_id=shopper_id, since=since, until=until)]


def purchase_out(purchase: Purchase) -> PurchaseOut:
    cur = purchase.currency
    return PurchaseOut(
        id=purchase.id, external_id=purchase.external_id, shopper_id=purchase.shopper_id, store_id=purchase.store_id,
        amount=from_minor(purchase.amount_minor, cur), amount_minor=purchase.amount_minor, currency=cur,
        items=[{"sku": i["sku"], "qty": i["qty"], "price": from_minor(int(i["price_minor"]), cur),  # type: ignore[call-overload]
                "price_minor": i["price_minor"]} for i in purchase.items],
        purchased_at=purchase.purchased_at, recorded_at=purchase.recorded_at)
