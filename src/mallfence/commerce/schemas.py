"""API shapes of products, stock, wishlists, orders, purchases and the inbound webhooks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from mallfence.staff.schemas import ShopperRef, StoreRef
from mallfence.tracking.schemas import ZoneRef
from mallfence.venues.schemas import Strict

# No whitespace (CSV cells, log lines), no control characters, no "/" (a SKU is a path segment).
SKU_PATTERN = r"^[^\s/\x00-\x1f\x7f]{1,64}$"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refused as input, never a 500
DB_ID_MAX = 2_147_483_647  # PostgreSQL integer: a larger id names nothing and must not reach the database
DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
Sku = Annotated[str, Field(pattern=SKU_PATTERN, description="the product's SKU as the stores' systems know it")]
StockLevelName = Literal["in_stock", "low", "out"]
OrderStatus = Literal["placed", "ready", "collected", "cancelled"]
MAX_QUANTITY = 10_000_000


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(v) for v in value)


class In(Strict):
    """What commerce reads from a request body."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return data


def exactly_one(model: BaseModel, *names: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {' or '.join(names)}" + (f" (got {', '.join(given)})" if given else ""))


# -- products and stock -------------------------------------------------------------------------------
class ProductIn(In):
    name: str = Field(min_length=1, max_length=200)
    brand: str | None = Field(None, min_length=1, max_length=100)
    image_url: str | None = Field(None, max_length=2048, pattern=r"^https?://\S+$")


class ProductOut(BaseModel):
    sku: str
    name: str
    brand: str | None
    image_url: str | None
    created_at: datetime
    updated_at: datetime


class StockIn(In):
    quantity: int = Field(ge=0, le=MAX_QUANTITY)
    low_threshold: int | None = Field(None, ge=0, le=MAX_QUANTITY, description="at or below it the level is 'low'; "
                                      "default: the current one, or 3 for a new row")


class StockOut(BaseModel):
    sku: str
    store_id: int
    quantity: int
    low_threshold: int
    level: StockLevelName
    updated_at: datetime


class StockImportSummary(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    products_created: int = Field(description="catalog entries the file's name column created")
    products_updated: int


class StoreChoice(In):
    """A store named by mallfence id, or by the external id of its zone (portable between installations)."""

    store_id: DbId | None = None
    store: str | None = Field(None, min_length=1, max_length=128, description="external_id of the store's zone")


class StockChange(StoreChoice):
    sku: Sku
    delta: int | None = Field(None, ge=-MAX_QUANTITY, le=MAX_QUANTITY, description="a sale (-1), a restock (+24)")
    quantity: int | None = Field(None, ge=0, le=MAX_QUANTITY, description="a count: the quantity now")
    reason: Literal["sale", "return", "restock", "adjustment", "count"] | None = None
    low_threshold: int | None = Field(None, ge=0, le=MAX_QUANTITY)

    @model_validator(mode="after")
    def _one_store_one_change(self) -> StockChange:
        exactly_one(self, "store_id", "store")
        exactly_one(self, "delta", "quantity")
        return self


class InventoryFeed(In):
    changes: list[StockChange] = Field(min_length=1, max_length=5000)


class InventoryApplied(BaseModel):
    applied: int
    clamped: list[int] = Field(description="changes whose delta would have taken the count below zero: set to 0 "
                                           "(the count had drifted; a stock count corrects it)")
    levels: list[StockOut] = Field(description="the stock after the changes, one per store and SKU touched")


class StoreBrief(BaseModel):
    id: int
    name: str
    zone_id: int | None
    level: int | None = Field(description="level ordinal of the store's zone")
    level_name: str | None


class StockPlace(BaseModel):
    store: StoreBrief
    level: StockLevelName
    quantity: int
    updated_at: datetime
    distance_m: float | None = Field(description="walking estimate from the given position: straight line to the "
                                                 "store's zone plus a walk per floor changed; null without one")
    walk_hint: str | None = Field(description="e.g. 'Level 1, about 40 m'")


class Origin(BaseModel):
    lon: float
    lat: float
    floor: int | None


class WhereInStock(BaseModel):
    product: ProductOut
    origin: Origin | None
    stores: list[StockPlace] = Field(description="stores with the SKU in stock or low now, nearest first")
    out_of_stock: list[StockPlace] = Field(description="stores that carry it but have none now")


# -- wishlists ------------------------------------------------------------------------------------------
class WishlistItemOut(BaseModel):
    sku: str
    name: str
    brand: str | None
    image_url: str | None
    added_at: datetime
    stores_in_stock: int = Field(description="stores of the venue with it in stock or low now")


# -- orders -----------------------------------------------------------------------------------------------
class OrderItem(In):
    sku: Sku
    qty: int = Field(ge=1, le=9999)
    name: str | None = Field(None, max_length=200)


class ShopperChoice(In):
    shopper_id: str | None = Field(None, min_length=1, max_length=36)
    loyalty_id: str | None = Field(None, min_length=1, max_length=64, description="Shopper.loyalty_id")


class OrderIn(ShopperChoice, StoreChoice):
    """An order as the commerce system knows it now: created on first sight, updated (status, items,
    ready_by) after. The shopper and the store of an order never change."""

    external_id: str = Field(min_length=1, max_length=128, description="the commerce system's order number")
    pickup_zone_id: DbId | None = Field(None, description="where the shopper collects; default: the store's zone")
    pickup_zone: str | None = Field(None, min_length=1, max_length=128, description="...or by zone external_id")
    status: OrderStatus = "placed"
    ready_by: AwareDatetime | None = None
    placed_at: AwareDatetime | None = None
    items: list[OrderItem] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _choices(self) -> OrderIn:
        exactly_one(self, "shopper_id", "loyalty_id")
        exactly_one(self, "store_id", "store")
        if self.pickup_zone_id is not None and self.pickup_zone is not None:
            raise ValueError("give pickup_zone_id or pickup_zone, not both")
        return self


class OrderUpdate(In):
    status: OrderStatus | None = None
    ready_by: AwareDatetime | None = None
    pickup_zone_id: DbId | None = None


class OrderOut(BaseModel):
    id: int
    external_id: str
    shopper: ShopperRef
    store: StoreRef
    pickup_zone: ZoneRef | None
    status: OrderStatus
    items: list[dict[str, Any]]
    ready_by: datetime | None
    placed_at: datetime
    ready_at: datetime | None
    arrived_at: datetime | None = Field(description="last time the shopper entered the pickup zone while it was ready")
    collected_at: datetime | None
    cancelled_at: datetime | None
    wait_s: float | None = Field(description="collected_at - arrived_at")
    collected_by: int | None = Field(description="staff member who handed it over")


class OrderWritten(OrderOut):
    created: bool
    changed: bool = Field(description="false when the order already was exactly this (a resend)")


# -- purchases --------------------------------------------------------------------------------------------
class PurchaseItem(In):
    sku: str = Field(min_length=1, max_length=64, description="need not be in the catalog (coffee, gift wrap)")
    qty: int = Field(ge=1, le=100_000)
    price: Decimal = Field(ge=0, le=Decimal("1e12"), description="unit price, in currency units")


class PurchaseIn(ShopperChoice, StoreChoice):
    external_id: str = Field(min_length=1, max_length=128, description="the POS receipt id; resending is a no-op")
    amount: Decimal = Field(ge=Decimal("-1e12"), le=Decimal("1e12"), description="total paid, currency units; "
                                                                                 "negative for a refund")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")
    items: list[PurchaseItem] = Field(default_factory=list, max_length=500)
    purchased_at: AwareDatetime

    @model_validator(mode="after")
    def _choices(self) -> PurchaseIn:
        exactly_one(self, "shopper_id", "loyalty_id")
        exactly_one(self, "store_id", "store")
        return self


class PurchaseOut(BaseModel):
    id: int
    external_id: str
    shopper_id: str
    store_id: int | None
    amount: str = Field(description="decimal string, exact")
    amount_minor: int = Field(description="in the currency's minor unit (cents)")
    currency: str
    items: list[dict[str, Any]]
    purchased_at: datetime
    recorded_at: datetime


class PurchaseRecorded(PurchaseOut):
    duplicate: bool = Field(description="this receipt was already stored; nothing changed")
