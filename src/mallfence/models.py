"""Every ORM model, imported once so metadata and Alembic see all tables."""

from mallfence.analytics.models import RollupState, ZoneDaily, ZoneHourly
from mallfence.auth.models import ApiKey, AuditEntry, ConsentRecord
from mallfence.commerce.models import InboundDelivery, Order, Product, Purchase, StockLevel, WishlistItem
from mallfence.db import Base
from mallfence.delivery.models import DeliveryAttempt, Notification, PushToken, WebhookDelivery, WebhookEndpoint
from mallfence.devices.models import Device, Shopper
from mallfence.engagement.models import Campaign, Decision, ShopperSegment
from mallfence.staff.models import IdentityCode, StaffMember
from mallfence.tracking.models import Event
from mallfence.venues.models import Beacon, Level, QrCode, SigningKey, Store, Venue, Zone

__all__ = [
    "ApiKey", "AuditEntry", "Base", "Beacon", "Campaign", "ConsentRecord", "Decision", "DeliveryAttempt", "Device",
    "Event", "IdentityCode", "InboundDelivery", "Level", "Notification", "Order", "Product", "Purchase", "PushToken",
    "QrCode", "RollupState", "Shopper", "ShopperSegment", "SigningKey", "StaffMember", "StockLevel", "Store",
    "Venue", "WebhookDelivery", "WebhookEndpoint", "WishlistItem", "Zone", "ZoneDaily", "ZoneHourly",
]
