"""The outbox dispatcher: claim due notifications, send them on the best channel, record the outcome.

Delivery is at least once. A batch is leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a lease column
on both) so several dispatchers never take the same row; a dispatcher that dies mid-batch leaves rows
whose lease runs out and that another pass sends again. Every push carries its notification id, so an
app drops a repeat of the (at most one) batch that was in flight.

Channel: the app's websocket when it is connected (the app acks by id; no ack within
``ack_timeout_s`` falls back to FCM), otherwise FCM to every valid token of the device, otherwise the
notification waits (``waiting``) until the app connects or registers a token, or until it expires.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mallfence.delivery import webhooks
from mallfence.delivery.fcm import FcmSender, PushMessage, PushResult
from mallfence.delivery.models import DeliveryAttempt, Notification, PushToken
from mallfence.worker import PollingWorker

log = logging.getLogger("mallfence.delivery")

FCM_BATCH = 500  # FCM's send_each limit


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    batch: int = 200
    lease_s: float = 60.0
    ack_timeout_s: float = 30.0
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0

    def backoff(self, attempts: int, retry_after_s: float | None) -> float:
        """Exponential with full jitter, never sooner than the server asked for."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(0, attempts - 1))
        return max(retry_after_s or 0.0, random.uniform(ceiling / 2, ceiling))


def ws_message(note: Notification) -> dict[str, object]:
    return {"type": "notification", "id": note.id, "title": note.title, "body": note.body, "data": note.data,
            "deep_link": note.deep_link, "category": note.category, "expires_at": note.expires_at.isoformat()}


class Dispatcher(PollingWorker):
    """Sends the outbox. ``run_once`` for tests and tools; ``start`` runs it in a thread."""

    def __init__(
        self, sessions: sessionmaker[Session], *, is_connected: Callable[[str], bool],
        push_ws: Callable[[str, list[dict[str, object]]], None], sender: FcmSender | None,
        policy: DispatchPolicy | None = None, owner: str | None = None, poll_s: float = 0.5,
    ):
        self._sessions = sessions
        self._is_connected = is_connected
        self._push_ws = push_ws
        self._sender = sender
        self.policy = policy or DispatchPolicy()
        self.owner = owner or f"dispatcher-{uuid.uuid4().hex[:8]}"
        super().__init__(self.owner, poll_s)

    def tick(self) -> int:
        return self.run_once()

    # -- one pass ---------------------------------------------------------------------------------
    def claim(self, session: Session, now: datetime) -> list[Notification]:
        """Lease up to ``batch`` due notifications for this dispatcher."""
        due = (select(Notification.id)
               .where(Notification.status.in_(("pending", "awaiting_ack")), Notification.next_attempt_at <= now,
                      or_(Notification.lease_until.is_(None), Notification.lease_until < now))
               .order_by(Notification.id).limit(self.policy.batch))
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = list(session.scalars(
            update(Notification).where(Notification.id.in_(due.scalar_subquery()))
            .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.policy.lease_s))
            .returning(Notification.id)))
        if not ids:
            return []
        return list(session.scalars(select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id)))

    def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many notifications were handled."""
        now = datetime.now(UTC)
        with self._sessions() as session, session.begin():
            batch = self.claim(session, now)
        if not batch:
            return 0
        # Websocket pushes go out after the commit: an app that acks at once must find awaiting_ack stored,
        # or our commit would overwrite its "delivered".
        pushes: list[tuple[str, dict[str, object]]] = []
        with self._sessions() as session, session.begin():
            notes = list(session.scalars(select(Notification).where(Notification.id.in_([n.id for n in batch]))))
            before = {n.id: (n.status, n.sent_at) for n in notes}  # webhooks hook
            fcm: list[Notification] = []
            for note in notes:
                if note.lease_owner != self.owner:
                    continue  # someone took it over after our lease ran out
                self._route(session, note, now, fcm, pushes)
            self._send_fcm(session, fcm, now)
            for note in notes:
                if note.lease_owner == self.owner:
                    note.lease_owner, note.lease_until = None, None
            # webhooks hook: notification.* events commit with the status changes they report
            hooked = webhooks.enqueue_notification_outcomes(session, webhooks.notification_outcomes(notes, before))
        for device_id, message in pushes:
            self._push_ws(device_id, [message])
        if hooked:  # webhooks hook
            webhooks.wake_dispatchers()
        return len(batch)

    def _attempt(self, session: Session, note: Notification, channel: str, outcome: str, reason: str | None,
                 now: datetime) -> None:
        session.add(DeliveryAttempt(notification_id=note.id, channel=channel, outcome=outcome,
                                    reason=reason[:200] if reason else None, at=now))

    def _route(self, session: Session, note: Notification, now: datetime, fcm: list[Notification],
               pushes: list[tuple[str, dict[str, object]]]) -> None:
        if note.expires_at <= now:
            note.status = "expired"
            self._attempt(session, note, note.channel or "none", "expired", "past expires_at before delivery", now)
            return
        if note.status == "awaiting_ack":  # sent on the socket, no ack in time
            self._attempt(session, note, "ws", "retry", f"no ack within {self.policy.ack_timeout_s:g} s", now)
            fcm.append(note)
            return
        if self._is_connected(note.device_id):
            note.status, note.channel, note.sent_at = "awaiting_ack", "ws", now
            note.attempts += 1
            note.next_attempt_at = now + timedelta(seconds=self.policy.ack_timeout_s)
            pushes.append((note.device_id, ws_message(note)))
            self._attempt(session, note, "ws", "sent", None, now)
            return
        fcm.append(note)

    def _send_fcm(self, session: Session, notes: list[Notification], now: datetime) -> None:
        if not notes:
            return
        tokens: dict[str, list[PushToken]] = defaultdict(list)
        for token in session.scalars(select(PushToken).where(
                PushToken.device_id.in_({n.device_id for n in notes}), PushToken.invalid_at.is_(None))):
            tokens[token.device_id].append(token)
        plan: list[tuple[Notification, PushToken, PushMessage]] = []
        for note in notes:
            if self._sender is None or not tokens[note.device_id]:
                self._park(session, note, "no open websocket and no valid push token", now)
                continue
            ttl = max(1, int((note.expires_at - now).total_seconds()))
            data = {**note.data, "notification_id": str(note.id)}
            if note.deep_link:
                data["deep_link"] = note.deep_link
            for token in tokens[note.device_id]:
                plan.append((note, token, PushMessage(token=token.token, title=note.title, body=note.body, data=data,
                                                      collapse_key=note.collapse_key, ttl_s=ttl, ref=str(note.id))))
        results: list[PushResult] = []
        for start in range(0, len(plan), FCM_BATCH):
            results += self._sender.send([m for _, _, m in plan[start:start + FCM_BATCH]])  # type: ignore[union-attr]
        by_note: dict[int, list[tuple[PushToken, PushResult]]] = defaultdict(list)
        for (note, token, _), result in zip(plan, results, strict=True):
            by_note[note.id].append((token, result))
            if result.outcome == "prune":
                token.invalid_at, token.invalid_reason = now, (result.reason or "invalid")[:64]
        for note in notes:
            if note.id in by_note:
                self._settle(session, note, by_note[note.id], now)

    def _settle(self, session: Session, note: Notification, outcomes: list[tuple[PushToken, PushResult]],
                now: datetime) -> None:
        for _, r in outcomes:
            self._attempt(session, note, "fcm", {"prune": "pruned"}.get(r.outcome, r.outcome), r.reason, now)
        note.attempts += 1
        results = [r for _, r in outcomes]
        if any(r.outcome == "sent" for r in results):
            note.status, note.channel, note.sent_at, note.last_error = "sent", "fcm", now, None
            return
        retry = [r for r in results if r.outcome == "retry"]
        if retry and note.attempts < self.policy.max_attempts:
            after = max((r.retry_after_s or 0.0) for r in retry)
            note.status, note.last_error = "pending", f"fcm: {retry[0].reason or 'retry'}"
            note.next_attempt_at = now + timedelta(seconds=self.policy.backoff(note.attempts, after))
            return
        if all(r.outcome == "prune" for r in results):
            self._park(session, note, "every push token was rejected by FCM", now)
            return
        reasons = ", ".join(sorted({r.reason or r.outcome for r in results}))
        note.status, note.last_error = "failed", f"fcm gave up after {note.attempts} attempt(s): {reasons}"[:500]
        log.warning("notification %s failed: %s", note.id, note.last_error)

    def _park(self, session: Session, note: Notification, reason: str, now: datetime) -> None:
        note.status, note.last_error = "waiting", reason
        self._attempt(session, note, "none", "no_channel", reason, now)
