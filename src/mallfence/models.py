"""Every ORM model, imported once so metadata and Alembic see all tables."""

from mallfence.db import Base
from mallfence.delivery.models import DeliveryAttempt, Notification, PushToken, WebhookDelivery, WebhookEndpoint
from mallfence.devices.models import Device
from mallfence.tracking.models import Event
from mallfence.venues.models import Level, Store, Venue, Zone

__all__ = [
    "Base", "DeliveryAttempt", "Device", "Event", "Level", "Notification", "PushToken", "Store", "Venue",
    "WebhookDelivery", "WebhookEndpoint", "Zone",
]
