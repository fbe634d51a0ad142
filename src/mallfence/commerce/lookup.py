"""Resolving what feeds name (stores, shoppers, zones, SKUs) to rows of this venue, with errors that say which."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallfence.commerce.models import Product
from mallfence.devices.models import Shopper
from mallfence.errors import Invalid, Issue
from mallfence.venues.models import Store, Venue, Zone

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Stores:
    """The venue's stores by id and by their zone's external id, loaded once for a whole feed."""

    venue: str
    ids: frozenset[int]
    by_ref: dict[str, int]

    def find(self, *, store_id: int | None, store: str | None, loc: Loc = ()) -> int | Issue:
        """The store's id, or the Issue saying why there is none (callers collect every row's issues)."""
        if store_id is not None:
            if store_id in self.ids:
                return store_id
            return Issue((*loc, "store_id"), f"store {store_id} does not exist in venue {self.venue!r}")
        if store is not None and store in self.by_ref:
            return self.by_ref[store]
        return Issue((*loc, "store"), f"no store whose zone has external_id {store!r} in venue {self.venue!r}")

    def get(self, *, store_id: int | None, store: str | None, loc: Loc = ()) -> int:
        found = self.find(store_id=store_id, store=store, loc=loc)
        if isinstance(found, Issue):
            raise Invalid(found)
        return found


def stores(session: Session, *, venue: Venue) -> Stores:
    rows = session.execute(select(Store.id, Zone.external_id).outerjoin(Zone, Zone.id == Store.zone_id)
                           .where(Store.venue_id == venue.id)).all()
    return Stores(venue.slug, frozenset(r[0] for r in rows), {r[1]: r[0] for r in rows if r[1] is not None})


def shopper(session: Session, *, venue: Venue, shopper_id: str | None, loyalty_id: str | None,
            loc: Loc = ()) -> Shopper:
    """The shopper named by mallfence id or loyalty id; Invalid (naming the field) if the venue has none."""
    if shopper_id is not None:
        found = session.get(Shopper, shopper_id)
        if found is None or found.venue_id != venue.id:
            raise Invalid(Issue((*loc, "shopper_id"), f"no shopper {shopper_id!r} in venue {venue.slug!r}"))
        return found
    found = session.scalar(select(Shopper).where(Shopper.venue_id == venue.id, Shopper.loyalty_id == loyalty_id))
    if found is None:
        raise Invalid(Issue((*loc, "loyalty_id"), f"no shopper with loyalty_id {loyalty_id!r} in venue "
                                                  f"{venue.slug!r}: link an app install to it first "
                                                  "(PUT /v1/venues/{slug}/shoppers/link)"))
    return found


def zone(session: Session, *, venue: Venue, zone_id: int | None, zone_ref: str | None, loc: Loc = ()) -> Zone:
    """A zone of the venue by id or external id."""
    if zone_id is not None:
        found = session.get(Zone, zone_id)
        if found is None or found.venue_id != venue.id:
            raise Invalid(Issue((*loc, "pickup_zone_id"), f"zone {zone_id} does not exist in venue {venue.slug!r}"))
        return found
    found = session.scalar(select(Zone).where(Zone.venue_id == venue.id, Zone.external_id == zone_ref))
    if found is None:
        raise Invalid(Issue((*loc, "pickup_zone"), f"no zone with external_id {zone_ref!r} in venue {venue.slug!r}"))
    return found


def products(session: Session, *, venue_id: int, skus: Iterable[str]) -> dict[str, Product]:
    """The catalog entries among ``skus``, by SKU (missing ones are simply absent)."""
    wanted = sorted(set(skus))
    out: dict[str, Product] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[start:start + 500]
        out.update((p.sku, p) for p in session.scalars(
            select(Product).where(Product.venue_id == venue_id, Product.sku.in_(chunk))))
    return out
