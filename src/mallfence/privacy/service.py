"""Personal data: what mallfence holds about a shopper (export), forgetting them (erasure), and retention.

Everything about a shopper hangs off two keys: the shopper id and the ids of its devices (app installs).
Every table holding either is listed in ``HELD`` (tests check the list against the schema), so export and
erasure cannot miss one. Three places hold the ids inside text rather than a column: webhook payloads
queued or sent to the venue's endpoints, inbound commerce webhook answers kept for idempotency, and audit
log targets; erasure deletes or redacts those by searching for the ids (UUID4s: no false matches).

What survives an erasure is what carries no identity: campaign send counters, hourly rollups, the audit
entry of the erasure itself (with a one-way hash of the shopper id, so a repeated request can be matched
to it without keeping who it was).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mallfence.auth.models import AuditEntry, ConsentRecord
from mallfence.commerce.models import InboundDelivery, Order, Purchase, WishlistItem
from mallfence.delivery.models import DeliveryAttempt, Notification, PushToken, WebhookDelivery, WebhookEndpoint
from mallfence.devices.models import Device, Shopper
from mallfence.engagement.models import Decision, ShopperSegment
from mallfence.privacy import pseudonym
from mallfence.staff.models import IdentityCode
from mallfence.tracking.models import Event

# Tables keyed by the shopper id or by a device id, and by which column.
HELD: tuple[tuple[Any, str], ...] = (
    (Shopper, "id"), (Device, "shopper_id"), (ConsentRecord, "shopper_id"), (Event, "device_id"),
    (Decision, "shopper_id"), (Notification, "device_id"), (PushToken, "device_id"), (IdentityCode, "device_id"),
    (WishlistItem, "shopper_id"), (Order, "shopper_id"), (Purchase, "shopper_id"), (ShopperSegment, "shopper_id"),
)
# Columns never handed out, not even to their owner: credentials.
SECRET_COLUMNS = {"token_hash", "nonce"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row(obj: Any) -> dict[str, Any]:
    out = {}
    for attr in obj.__mapper__.column_attrs:
        if attr.key in SECRET_COLUMNS:
            continue
        value = getattr(obj, attr.key)
        if attr.key == "token" and isinstance(value, str):  # an FCM registration token: its tail identifies it
            value = "…" + value[-8:]
        out[attr.key] = _plain(value)
    return out


def _owned(model: Any, column: str, shopper_id: str, device_ids: list[str]) -> ColumnElement[bool]:
    col = getattr(model, column)
    return col.in_(device_ids) if column == "device_id" else col == shopper_id


def devices_of(session: Session, shopper_id: str) -> list[str]:
    return list(session.scalars(select(Device.id).where(Device.shopper_id == shopper_id).order_by(Device.created_at)))


def export(session: Session, *, shopper: Shopper) -> dict[str, Any]:
    """Everything held about ``shopper``, table by table, plus the attempts of its notifications."""
    device_ids = devices_of(session, shopper.id)
    held: dict[str, list[dict[str, Any]]] = {}
    for model, column in HELD:
        rows = session.scalars(select(model).where(_owned(model, column, shopper.id, device_ids)))
        held[model.__tablename__] = [_row(r) for r in rows]
    notes = [n["id"] for n in held["notifications"]]
    held["delivery_attempts"] = [_row(r) for r in session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(notes)).order_by(DeliveryAttempt.id))]
    return {"shopper_id": shopper.id, "exported_at": datetime.now(UTC).isoformat(), "device_ids": device_ids,
            "tables": held}


def _mentions(column: Any, ids: Iterable[str]) -> ColumnElement[bool]:
    return or_(*(cast(column, Text).contains(i) for i in ids))


def erase(session: Session, *, shopper: Shopper) -> dict[str, int]:
    """Delete everything held about ``shopper`` (one transaction); rows removed per table."""
    device_ids = devices_of(session, shopper.id)
    ids = [shopper.id, *device_ids]
    removed: dict[str, int] = {}
    for model, column in HELD:
        n = session.scalar(select(func.count()).select_from(model).where(_owned(model, column, shopper.id, device_ids)))
        if n:
            removed[model.__tablename__] = int(n)
    endpoints = select(WebhookEndpoint.id).where(WebhookEndpoint.venue_id == shopper.venue_id)
    hooks = session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.endpoint_id.in_(endpoints), _mentions(WebhookDelivery.payload, ids)))
    answers = session.execute(delete(InboundDelivery).where(
        InboundDelivery.venue_id == shopper.venue_id, _mentions(InboundDelivery.response, ids)))
    audited = session.execute(update(AuditEntry).where(
        or_(_mentions(AuditEntry.target, ids), _mentions(AuditEntry.detail, ids)))
        .values(target=f"erased shopper {pseudonym(shopper.id)}", detail={}))
    for name, result in (("webhook_deliveries", hooks), ("inbound_deliveries", answers), ("audit_log", audited)):
        if result.rowcount:  # type: ignore[attr-defined]
            removed[name] = int(result.rowcount)  # type: ignore[attr-defined]
    # The database cascades from the shopper to its devices, and from both to everything in HELD.
    session.execute(delete(Shopper).where(Shopper.id == shopper.id))
    return removed


# -- retention ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Retention:
    positions_days: float = 7.0  # the position (lon, lat, accuracy) behind an event
    events_days: float = 365.0  # events, decisions, notifications
    webhook_days: float = 30.0  # delivered or failed webhook payloads
    audit_days: float = 730.0

    @classmethod
    def of(cls, settings: Any) -> Retention:
        return cls(positions_days=settings.retention_positions_days, events_days=settings.retention_events_days,
                   webhook_days=settings.retention_webhooks_days, audit_days=settings.retention_audit_days)


def purge(session: Session, *, retention: Retention, now: datetime | None = None) -> dict[str, int]:
    """Apply ``retention``: positions dropped from old events, old events, decisions, notifications, webhook
    payloads and audit entries deleted. What it did, per step."""
    now = now or datetime.now(UTC)

    def before(days: float) -> datetime:
        return now - timedelta(days=days)

    steps = {
        "positions": update(Event).where(Event.occurred_at < before(retention.positions_days), Event.lon.is_not(None))
        .values(lon=None, lat=None, accuracy_m=None),
        "events": delete(Event).where(Event.occurred_at < before(retention.events_days)),
        "decisions": delete(Decision).where(Decision.at < before(retention.events_days)),
        "notifications": delete(Notification).where(Notification.created_at < before(retention.events_days),
                                                    Notification.status != "pending"),
        "webhook_deliveries": delete(WebhookDelivery).where(WebhookDelivery.created_at < before(retention.webhook_days),
                                                            WebhookDelivery.status != "pending"),
        "audit_log": delete(AuditEntry).where(AuditEntry.at < before(retention.audit_days)),
    }
    return {name: int(session.execute(stmt).rowcount or 0) for name, stmt in steps.items()}  # type: ignore[attr-defined]
