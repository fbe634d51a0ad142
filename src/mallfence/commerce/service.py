"""The catalog and stock per store: upserts, the POS / ERP change feed, and what is out where. Keyword-only,
session first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallfence.commerce import lookup
from mallfence.commerce.models import Product, StockLevel
from mallfence.commerce.schemas import InventoryApplied, ProductIn, ProductOut, StockChange, StockIn, StockOut
from mallfence.errors import Invalid, Issue, NotFound
from mallfence.venues.models import Store, Venue

# A new row's threshold when the feed gives none: "only 3 left" is when a shopper should hurry, and
# when a wishlist alert should not send them across the mall for an item that may be gone on arrival.
DEFAULT_LOW_THRESHOLD = 3
AVAILABLE = ("in_stock", "low")


def level_of(quantity: int, low_threshold: int) -> str:
    """in_stock, low (1..threshold) or out (0)."""
    if quantity <= 0:
        return "out"
    return "low" if quantity <= low_threshold else "in_stock"


# -- products ---------------------------------------------------------------------------------------------
def product_out(product: Product) -> ProductOut:
    return ProductOut(sku=product.sku, name=product.name, brand=product.brand, image_url=product.image_url,
                      created_at=product.created_at, updated_at=product.updated_at)


def get_product(session: Session, *, venue: Venue, sku: str) -> Product:
    product = session.scalar(select(Product).where(Product.venue_id == venue.id, Product.sku == sku))
    if product is None:
        raise NotFound(f"SKU {sku!r} is not in the catalog of venue {venue.slug!r}")
    return product


def list_products(session: Session, *, venue: Venue, after: str | None = None, limit: int = 100,
                  q: str | None = None) -> list[Product]:
    """Products by SKU; ``after`` pages on (the last SKU of the previous page), ``q`` matches name or brand."""
    query = select(Product).where(Product.venue_id == venue.id)
    if after is not None:
        query = query.where(Product.sku > after)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(func.lower(Product.name).like(pattern) | func.lower(Product.brand).like(pattern))
    return list(session.scalars(query.order_by(Product.sku).limit(limit)))


def upsert_product(session: Session, *, venue: Venue, sku: str, data: ProductIn) -> tuple[Product, bool]:
    """Create or replace the catalog entry ``sku``; (product, created)."""
    product = session.scalar(select(Product).where(Product.venue_id == venue.id, Product.sku == sku))
    created = product is None
    if product is None:
        product = Product(venue_id=venue.id, sku=sku, name=data.name)
        session.add(product)
    product.name, product.brand, product.image_url = data.name, data.brand, data.image_url
    session.flush()
    return product, created


def delete_product(session: Session, *, product: Product) -> None:
    """Remove it from the catalog, with its stock rows and the wishlists that saved it."""
    session.delete(product)
    session.flush()


# -- stock --------------------------------------------------------------------------------------------------
def stock_out(row: StockLevel) -> StockOut:
    return StockOut(sku=row.product.sku, store_id=row.store_id, quantity=row.quantity,  # type: ignore[arg-type]
                    low_threshold=row.low_threshold, level=row.level, updated_at=row.updated_at)


def _store(session: Session, venue: Venue, store_id: int) -> Store:
    store = session.get(Store, store_id)
    if store is None or store.venue_id != venue.id:
        raise NotFound(f"store {store_id} not found in venue {venue.slug!r}")
    return store


def set_row(row: StockLevel, *, quantity: int, low_threshold: int | None, now: datetime) -> None:
    row.quantity = max(0, quantity)
    if low_threshold is not None:
        row.low_threshold = low_threshold
    row.level = level_of(row.quantity, row.low_threshold)
    row.updated_at = now


def new_row(*, venue_id: int, store_id: int, product: Product) -> StockLevel:
    return StockLevel(venue_id=venue_id, store_id=store_id, product_id=product.id, product=product, quantity=0,
                      low_threshold=DEFAULT_LOW_THRESHOLD, level="out")


def set_stock(session: Session, *, venue: Venue, store_id: int, sku: str, data: StockIn) -> StockLevel:
    """The operator states a store's count of ``sku`` (which must be in the catalog)."""
    store = _store(session, venue, store_id)
    product = lookup.products(session, venue_id=venue.id, skus=[sku]).get(sku)
    if product is None:
        raise Invalid(Issue(("sku",), f"SKU {sku!r} is not in the catalog of venue {venue.slug!r}: "
                                      f"PUT /v1/venues/{venue.slug}/products/{sku} first"))
    row = session.scalar(select(StockLevel).where(StockLevel.store_id == store.id,
                                                  StockLevel.product_id == product.id).with_for_update(of=StockLevel))
    if row is None:
        row = new_row(venue_id=venue.id, store_id=store.id, product=product)
        session.add(row)
    set_row(row, quantity=data.quantity, low_threshold=data.low_threshold, now=datetime.now(UTC))
    session.flush()
    return row


def list_store_stock(session: Session, *, venue: Venue, store_id: int, level: str | None = None) -> list[StockLevel]:
    store = _store(session, venue, store_id)
    query = select(StockLevel).join(Product, Product.id == StockLevel.product_id).where(StockLevel.store_id == store.id)
    if level is not None:
        query = query.where(StockLevel.level == level)
    return list(session.scalars(query.order_by(Product.sku)).unique())


def rows_for(session: Session, *, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], StockLevel]:
    """Existing stock rows by (store_id, product_id), locked for this transaction (PostgreSQL). Asked per
    store (the unique index leads with store_id: SQLite does not use it for a row-value IN), stores and
    rows in a fixed order, so two feeds touching the same rows cannot deadlock."""
    by_store: dict[int, list[int]] = defaultdict(list)
    for store_id, product_id in sorted(set(pairs)):
        by_store[store_id].append(product_id)
    out: dict[tuple[int, int], StockLevel] = {}
    for store_id, product_ids in by_store.items():
        for start in range(0, len(product_ids), 500):
            rows = session.scalars(select(StockLevel).where(
                StockLevel.store_id == store_id, StockLevel.product_id.in_(product_ids[start:start + 500]))
                .order_by(StockLevel.product_id).with_for_update(of=StockLevel)).unique()
            out.update(((r.store_id, r.product_id), r) for r in rows)
    return out


def apply_changes(session: Session, *, venue: Venue, changes: Sequence[StockChange]) -> InventoryApplied:
    """Apply a POS / ERP feed of deltas and counts, in order; every unknown store or SKU is reported and
    then nothing is applied."""
    stores = lookup.stores(session, venue=venue)
    catalog = lookup.products(session, venue_id=venue.id, skus=[c.sku for c in changes])
    issues: list[Issue] = []
    targets: list[tuple[int, Product]] = []
    for i, change in enumerate(changes):
        found = stores.find(store_id=change.store_id, store=change.store, loc=("changes", i))
        product = catalog.get(change.sku)
        if isinstance(found, Issue):
            issues.append(found)
        if product is None:
            issues.append(Issue(("changes", i, "sku"), f"SKU {change.sku!r} is not in the catalog of venue "
                                                       f"{venue.slug!r}"))
        if not isinstance(found, Issue) and product is not None:
            targets.append((found, product))
    if issues:
        raise Invalid(issues)
    rows = rows_for(session, pairs=[(s, p.id) for s, p in targets])
    now = datetime.now(UTC)
    clamped: list[int] = []
    for i, (change, (store_id, product)) in enumerate(zip(changes, targets, strict=True)):
        row = rows.get((store_id, product.id))
        if row is None:
            row = rows[(store_id, product.id)] = new_row(venue_id=venue.id, store_id=store_id, product=product)
            session.add(row)
        quantity = change.quantity if change.quantity is not None else row.quantity + (change.delta or 0)
        if quantity < 0:
            clamped.append(i)
        set_row(row, quantity=quantity, low_threshold=change.low_threshold, now=now)
    session.flush()
    touched = dict.fromkeys((s, p.id) for s, p in targets)
    return InventoryApplied(applied=len(changes), clamped=clamped, levels=[stock_out(rows[k]) for k in touched])


def out_of_stock(session: Session, store_id: int, skus: Iterable[str]) -> set[str]:
    """The SKUs among ``skus`` that ``store_id`` is known to be out of (a row at 0). A SKU without a stock
    row at that store is not reported: no feed is not the same as none left. Positional, unlike the other
    services: the decision engine calls it through ``Runtime.out_of_stock(session, store_id, skus)``."""
    wanted = sorted(set(skus))
    if not wanted:
        return set()
    venue_id = select(Store.venue_id).where(Store.id == store_id).scalar_subquery()  # SKUs are unique per venue
    return set(session.scalars(select(Product.sku).join(StockLevel, StockLevel.product_id == Product.id).where(
        Product.venue_id == venue_id, Product.sku.in_(wanted), StockLevel.store_id == store_id,
        StockLevel.level == "out")))


def stores_in_stock(session: Session, *, product_ids: Sequence[int]) -> dict[int, int]:
    """How many stores have each product in stock or low now."""
    if not product_ids:
        return {}
    return dict(session.execute(select(StockLevel.product_id, func.count()).where(
        StockLevel.product_id.in_(product_ids), StockLevel.level.in_(AVAILABLE)).group_by(StockLevel.product_id)).all())
