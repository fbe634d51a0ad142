"""Push tokens and the notification outbox: enqueue (deduplicated), acknowledge, list."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mallfence import metrics
from mallfence.delivery import schemas, webhooks
from mallfence.delivery.models import DeliveryAttempt, Notification, PushToken
from mallfence.devices.models import Device
from mallfence.errors import NotFound

OPEN = ("pending", "awaiting_ack", "waiting", "sent")  # not yet acknowledged by the app


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register_token(session: Session, *, device: Device, data: schemas.PushTokenIn) -> PushToken:
    """Add or refresh a token; a token seen on another device (reinstall) moves to this one."""
    now = datetime.now(UTC)
    token = session.scalar(select(PushToken).where(PushToken.token_hash == _token_hash(data.token)))
    if token is None:
        token = PushToken(device_id=device.id, token=data.token, token_hash=_token_hash(data.token),
                          platform=data.platform)
        session.add(token)
    token.device_id, token.platform, token.refreshed_at = device.id, data.platform, now
    token.invalid_at = token.invalid_reason = None
    session.flush()
    # Notifications parked for lack of a channel get another chance now.
    session.execute(update(Notification).where(Notification.device_id == device.id,
                                               Notification.status == "waiting")
                    .values(status="pending", next_attempt_at=now))
    return token


def delete_token(session: Session, *, device: Device, token_id: int) -> None:
    token = session.get(PushToken, token_id)
    if token is None or token.device_id != device.id:
        raise NotFound(f"push token {token_id} not found for this device")
    session.delete(token)


def list_tokens(session: Session, *, device: Device) -> list[PushToken]:
    return list(session.scalars(select(PushToken).where(PushToken.device_id == device.id).order_by(PushToken.id)))


def enqueue(
    session: Session, *, venue_id: int, device_id: str, dedupe_key: str, title: str, body: str,
    category: str, ttl_s: int, data: dict[str, str] | None = None, deep_link: str | None = None,
    collapse_key: str | None = None,
) -> Notification | None:
    """Write a notification in the caller's transaction; None if its dedupe key was used already."""
    with metrics.timed("outbox"):
        if session.scalar(select(Notification.id).where(Notification.dedupe_key == dedupe_key)) is not None:
            return None
        now = datetime.now(UTC)
        note = Notification(
            venue_id=venue_id, device_id=device_id, dedupe_key=dedupe_key, category=category, title=title,
            body=body, data=dict(data or {}), deep_link=deep_link, collapse_key=collapse_key,
            expires_at=now + timedelta(seconds=ttl_s), next_attempt_at=now, status="pending", attempts=0,
        )
        try:
            with session.begin_nested():  # a concurrent writer may win the unique key: keep our transaction
                session.add(note)
        except IntegrityError:
            return None
    metrics.NOTIFICATIONS_CREATED.inc()  # counted at the write: a rolled-back batch overcounts, rarely
    return note


def send(session: Session, *, venue_id: int, data: schemas.NotificationIn, device_ids: Iterable[str],
         request_key: str) -> schemas.SendResult:
    """Enqueue one notification per target device (devices of other venues are refused)."""
    targets = sorted(set(device_ids))
    known = set(session.scalars(select(Device.id).where(Device.id.in_(targets), Device.venue_id == venue_id)))
    missing = [d for d in targets if d not in known]
    if missing and data.device_ids is not None:
        raise NotFound(f"{len(missing)} device(s) not found in this venue, e.g. {missing[0]!r}")
    created, duplicates = [], 0
    for device_id in targets:
        key = f"op:{data.dedupe_key or request_key}:{device_id}"
        note = enqueue(session, venue_id=venue_id, device_id=device_id, dedupe_key=key, title=data.title,
                       body=data.body, category=data.category, ttl_s=data.ttl_s, data=data.data,
                       deep_link=data.deep_link, collapse_key=data.collapse_key)
        if note is None:
            duplicates += 1
        else:
            created.append(note)
    session.flush()
    return schemas.SendResult(created=[n.id for n in created], duplicates=duplicates, devices=len(targets))


def acknowledge(session: Session, *, device_id: str, ids: Iterable[int]) -> int:
    """The app has shown these notifications: mark them delivered. Returns how many changed."""
    now = datetime.now(UTC)
    # The write first (UPDATE ... RETURNING): on SQLite a transaction that reads, then writes fails with "database
    # is locked" when another writer (the dispatcher) committed in between; its first write would wait instead.
    rows = list(session.scalars(
        update(Notification).where(Notification.device_id == device_id, Notification.id.in_(list(ids)),
                                   Notification.status.in_(OPEN))
        .values(status="delivered", delivered_at=now, next_attempt_at=now).returning(Notification)))
    for note in rows:
        session.add(DeliveryAttempt(notification_id=note.id, channel=note.channel or "ws", outcome="acked", at=now))
    webhooks.enqueue_notification_outcomes(session, [(n, "notification.delivered") for n in rows])
    session.flush()
    return len(rows)


def requeue_unacked(session: Session, *, device_id: str) -> int:
    """On (re)connect: everything not yet acknowledged goes out again, now, over the open socket."""
    now = datetime.now(UTC)
    result = session.execute(update(Notification).where(
        Notification.device_id == device_id, Notification.status.in_(("awaiting_ack", "waiting")),
        Notification.expires_at > now).values(status="pending", next_attempt_at=now))
    return int(result.rowcount or 0)


def get(session: Session, *, notification_id: int, venue_id: int | None = None,
        device_id: str | None = None) -> Notification:
    note = session.get(Notification, notification_id)
    if note is None or (venue_id is not None and note.venue_id != venue_id) or (
            device_id is not None and note.device_id != device_id):
        raise NotFound(f"notification {notification_id} not found")
    return note


def listing(session: Session, *, venue_id: int | None = None, device_id: str | None = None,
            status: str | None = None, after_id: int = 0, limit: int = 100) -> list[Notification]:
    q = select(Notification).where(Notification.id > after_id).order_by(Notification.id).limit(limit)
    if venue_id is not None:
        q = q.where(Notification.venue_id == venue_id)
    if device_id is not None:
        q = q.where(Notification.device_id == device_id)
    if status is not None:
        q = q.where(Notification.status == status)
    return list(session.scalars(q))


def out(session: Session, note: Notification, *, history: bool = False) -> schemas.NotificationOut:
    attempts: list[Any] = []
    if history:
        attempts = [schemas.AttemptOut(channel=a.channel, outcome=a.outcome, reason=a.reason, at=a.at)
                    for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == note.id)
                                             .order_by(DeliveryAttempt.id))]
    return schemas.NotificationOut(
        id=note.id, device_id=note.device_id, category=note.category, title=note.title, body=note.body,
        data=note.data, deep_link=note.deep_link, status=note.status, channel=note.channel,
        attempts=note.attempts, created_at=note.created_at, expires_at=note.expires_at, sent_at=note.sent_at,
        delivered_at=note.delivered_at, last_error=note.last_error, history=attempts,
    )
