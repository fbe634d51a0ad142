"""Stock as a CSV file (an ERP export): one row per store and SKU, all rows stored or none.

Columns: ``sku``, ``quantity``, the store as ``store_id`` or ``store`` (its zone's external_id), optional
``low_threshold``; and optional ``name``, ``brand``, ``image_url``. A file with a ``name`` column is also a
catalog upsert for its rows: a row naming an unknown SKU creates that product, a known SKU gets the name.
Without that column an unknown SKU is an error, so a mistyped SKU cannot create stock for nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from mallfence.commerce import lookup
from mallfence.commerce.models import Product
from mallfence.commerce.schemas import MAX_QUANTITY, SKU_PATTERN, StockImportSummary
from mallfence.commerce.service import new_row, rows_for, set_row
from mallfence.errors import Invalid, Issue
from mallfence.venues.models import Venue

COLUMNS = ("sku", "quantity", "store_id", "store", "low_threshold", "name", "brand", "image_url")
MAX_ROWS = 200_000
_SKU = re.compile(SKU_PATTERN)
_URL = re.compile(r"^https?://\S+$")
_LIMITS = {"name": 200, "brand": 100, "image_url": 2048}


@dataclass(slots=True)
class Row:
    line: int
    sku: str
    store_id: int
    quantity: int
    low_threshold: int | None
    name: str | None
    brand: str | None
    image_url: str | None


def _header(reader: csv.DictReader[str]) -> list[str]:
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise Invalid(Issue(("csv",), "empty CSV: expected a header row, e.g. sku,store_id,quantity"))
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise Invalid(Issue(("csv", "header"), f"unknown column(s) {', '.join(map(repr, unknown))}; known: "
                                               f"{', '.join(COLUMNS)}"))
    missing = [c for c in ("sku", "quantity") if c not in header]
    if ("store_id" in header) == ("store" in header):
        missing.append("exactly one of store_id or store")
    if missing:
        raise Invalid(Issue(("csv", "header"), f"missing column(s): {', '.join(missing)}"))
    return header


def _count(value: str, loc: tuple[str, ...], issues: list[Issue]) -> int | None:
    try:
        number = int(value)
    except ValueError:
        issues.append(Issue(loc, f"{value!r} is not a whole number"))
        return None
    if not 0 <= number <= MAX_QUANTITY:
        issues.append(Issue(loc, f"{number} is outside 0..{MAX_QUANTITY}"))
        return None
    return number


def parse(session: Session, *, venue: Venue, text: str) -> tuple[list[Row], bool]:
    """The file's rows resolved against the venue (stores, catalog); every bad row reported at once.
    (rows, whether the file carries names)."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise Invalid(Issue(("csv", f"line {line}"), "contains a NUL character: not a text CSV file"))
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    header = _header(reader)
    named = "name" in header
    stores = lookup.stores(session, venue=venue)
    try:
        raw_rows = list(reader)
    except csv.Error as exc:  # e.g. a quote never closed
        raise Invalid(Issue(("csv", f"line {reader.line_num}"), f"not readable as CSV: {exc}")) from None
    if len(raw_rows) > MAX_ROWS:
        raise Invalid(Issue(("csv",), f"{len(raw_rows)} rows is more than the limit of {MAX_ROWS}: split the file"))
    catalog = lookup.products(session, venue_id=venue.id,
                              skus=[(r.get("sku") or "").strip() for r in raw_rows if r.get("sku")])
    rows: list[Row] = []
    issues: list[Issue] = []
    for line, raw in enumerate(raw_rows, start=2):
        at = ("csv", f"line {line}")
        if None in raw:
            issues.append(Issue(at, "more values than header columns"))
            continue
        cell = {k.strip(): (v or "").strip() for k, v in raw.items()}
        before = len(issues)
        sku = cell["sku"]
        if not _SKU.match(sku):
            issues.append(Issue((*at, "sku"), "missing" if not sku else f"{sku!r} is not a SKU (1-64 characters, "
                                                                        "no spaces or '/')"))
        quantity = _count(cell["quantity"], (*at, "quantity"), issues)
        low = _count(cell["low_threshold"], (*at, "low_threshold"), issues) if cell.get("low_threshold") else None
        if "store_id" in cell:
            ref = cell["store_id"]
            found = (stores.find(store_id=int(ref), store=None, loc=at) if ref.isdigit() else
                     Issue((*at, "store_id"), f"{ref!r} is not a store id" if ref else "missing"))
        else:
            found = stores.find(store_id=None, store=cell["store"], loc=at) if cell["store"] else \
                Issue((*at, "store"), "missing")
        if isinstance(found, Issue):
            issues.append(found)
        extra = {k: cell.get(k) or None for k in ("name", "brand", "image_url")}
        for k, limit in _LIMITS.items():
            if extra[k] is not None and len(extra[k]) > limit:  # type: ignore[arg-type]
                issues.append(Issue((*at, k), f"longer than {limit} characters"))
        if extra["image_url"] and not _URL.match(extra["image_url"]):
            issues.append(Issue((*at, "image_url"), "not an http(s) URL"))
        if _SKU.match(sku) and sku not in catalog and not extra["name"]:
            issues.append(Issue((*at, "sku"), f"SKU {sku!r} is not in the catalog of venue {venue.slug!r}" +
                                ("; give it a name in this row to create it" if named else
                                 " (add a name column to create products from this file)")))
        if len(issues) == before:
            rows.append(Row(line, sku, found, quantity, low, **extra))  # type: ignore[arg-type]
    pairs = Counter((r.store_id, r.sku) for r in rows)
    issues += [Issue(("csv", f"line {r.line}"), f"store {r.store_id} and SKU {r.sku!r} appear {n} times in this file")
               for r in rows if (n := pairs[(r.store_id, r.sku)]) > 1]
    if issues:
        raise Invalid(sorted(issues, key=lambda i: int(str(i.loc[1]).removeprefix("line "))))  # in file order
    return rows, named


def import_stock(session: Session, *, venue: Venue, text: str) -> StockImportSummary:
    """Upsert every row of the file (and, with a name column, its products); nothing if any row is bad."""
    rows, named = parse(session, venue=venue, text=text)
    catalog = lookup.products(session, venue_id=venue.id, skus=[r.sku for r in rows])
    products_created = products_updated = 0
    if named:
        for r in rows:
            product = catalog.get(r.sku)
            if product is None:
                product = catalog[r.sku] = Product(venue_id=venue.id, sku=r.sku, name=r.name, brand=r.brand,
                                                   image_url=r.image_url)
                session.add(product)
                products_created += 1
                continue
            wanted = {k: getattr(r, k) for k in ("name", "brand", "image_url") if getattr(r, k) is not None}
            if any(getattr(product, k) != v for k, v in wanted.items()):
                for k, v in wanted.items():
                    setattr(product, k, v)
                products_updated += 1
        session.flush()
    existing = rows_for(session, pairs=[(r.store_id, catalog[r.sku].id) for r in rows])
    created = updated = unchanged = 0
    now = datetime.now(UTC)
    for r in rows:
        product = catalog[r.sku]
        row = existing.get((r.store_id, product.id))
        if row is None:
            row = new_row(venue_id=venue.id, store_id=r.store_id, product=product)
            session.add(row)
            created += 1
        elif row.quantity == r.quantity and r.low_threshold in (None, row.low_threshold):
            unchanged += 1
        else:
            updated += 1
        set_row(row, quantity=r.quantity, low_threshold=r.low_threshold, now=now)
    session.flush()
    return StockImportSummary(rows=len(rows), created=created, updated=updated, unchanged=unchanged,
                              products_created=products_created, products_updated=products_updated)
