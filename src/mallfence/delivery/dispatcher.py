"""The outbox dispatcher: claim due notifications, send them on the best channel, record the outcome.

Delivery is at least once. A batch is leased (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a lease column
on both) so several dispatchers never take the same row; a dispatcher that dies mid-batch leaves rows
whose lease runs out and that another pass sends again. Every push carries its notification id, so an
app drops a repeat of the (at most one) batch that was in flight.

Channel: the app's websocket when it is connected (the app acks by id; no ack within
``ack_timeout_s`` falls back to FCM), otherwise FCM to every valid token of the device, otherwise the
notification waits (``waiting``) until the app connects or registers a token, or until it expires.

A pass is two short transactions around the FCM call, never one holding the database while FCM answers:
claim + route + everything decided without FCM (websocket, expiry, no channel); then, after FCM, the FCM
outcomes of the rows still leased to us. Both write with Core statements (executemany), not the ORM's
unit of work: that halved the dispatcher's CPU per notification (bench/delivery.py).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mallfence import metrics
from mallfence.db import transaction
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


# What a pass reads of a notification; _Note carries the same names as Notification (ws_message and the
# webhooks hook read them from either).
_READ = ("id", "venue_id", "device_id", "status", "channel", "category", "title", "body", "data", "deep_link",
         "collapse_key", "expires_at", "attempts", "sent_at", "last_error", "delivered_at", "next_attempt_at")
_WRITE = ("status", "channel", "sent_at", "attempts", "next_attempt_at", "last_error")
_table = Notification.__table__
# one statement for every outcome of a pass: executemany, one round trip per batch instead of one per row
_SETTLE = (_table.update().where(_table.c.id == bindparam("b_id"))
           .values({**{c: bindparam(f"b_{c}") for c in _WRITE}, "lease_owner": None, "lease_until": None}))
_PRUNE = (PushToken.__table__.update().where(PushToken.__table__.c.id == bindparam("b_id"))
          .values(invalid_at=bindparam("b_at"), invalid_reason=bindparam("b_reason")))


@dataclass(slots=True, eq=False)  # eq=False: hashed by identity, a dict key of the pass's plan
class _Note:
    id: int
    venue_id: int
    device_id: str
    status: str
    channel: str | None
    category: str
    title: str
    body: str
    data: dict[str, Any]
    deep_link: str | None
    collapse_key: str | None
    expires_at: datetime
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    next_attempt_at: datetime
    before: tuple[str, datetime | None] = ("", None)  # (status, sent_at) as read: the webhooks hook compares
    log: list[dict[str, Any]] = field(default_factory=list)  # delivery_attempts rows to write

    def row(self) -> dict[str, Any]:
        return {"b_id": self.id, **{f"b_{c}": getattr(self, c) for c in _WRITE}}


def ws_message(note: Notification | _Note) -> dict[str, object]:
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
    def claim(self, session: Session, now: datetime) -> list[_Note]:
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
        rows = session.execute(select(*(getattr(Notification, c) for c in _READ))
                               .where(Notification.id.in_(ids)).order_by(Notification.id))
        notes = [_Note(*row) for row in rows]
        for note in notes:
            note.before = (note.status, note.sent_at)
        return notes

    def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many notifications were handled."""
        now = datetime.now(UTC)
        pushes: list[tuple[str, dict[str, object]]] = []
        with transaction(self._sessions) as session:
            batch = self.claim(session, now)
            if not batch:
                return 0
            fcm = [note for note in batch if self._route(note, now, pushes)]
            plan = self._plan(session, fcm, now)
            settled = [n for n in batch if n not in plan]  # decided without FCM: written now, leases released
            hooked = self._write(session, settled)
        # Websocket pushes go out after the commit: an app that acks at once must find awaiting_ack stored.
        for device_id, message in pushes:
            self._push_ws(device_id, [message])
        if plan:
            results = self._send(plan)
            with transaction(self._sessions) as session:
                hooked += self._settle_fcm(session, plan, results, now)
        if hooked:  # webhooks hook
            webhooks.wake_dispatchers()
        return len(batch)

    def _route(self, note: _Note, now: datetime, pushes: list[tuple[str, dict[str, object]]]) -> bool:
        """Decide the channel; True: FCM's (decided later), else the outcome is set on the note."""
        if note.expires_at <= now:
            note.status = "expired"
            self._attempt(note, note.channel or "none", "expired", "past expires_at before delivery", now)
            return False
        if note.status == "awaiting_ack":  # sent on the socket, no ack in time
            self._attempt(note, "ws", "retry", f"no ack within {self.policy.ack_timeout_s:g} s", now)
            return True
        if self._is_connected(note.device_id):
            note.status, note.channel, note.sent_at = "awaiting_ack", "ws", now
            note.attempts += 1
            note.next_attempt_at = now + timedelta(seconds=self.policy.ack_timeout_s)
            pushes.append((note.device_id, ws_message(note)))
            self._attempt(note, "ws", "sent", None, now)
            return False
        return True

    def _plan(self, session: Session, notes: list[_Note], now: datetime) -> dict[_Note, list[tuple[int, PushMessage]]]:
        """The pushes (token id, message) of each FCM-bound note; a note without a valid token waits."""
        tokens: dict[str, list[tuple[int, str]]] = defaultdict(list)
        if notes and self._sender is not None:
            for token_id, device_id, token in session.execute(
                    select(PushToken.id, PushToken.device_id, PushToken.token).where(
                        PushToken.device_id.in_({n.device_id for n in notes}), PushToken.invalid_at.is_(None))
                    .order_by(PushToken.id)):
                tokens[device_id].append((token_id, token))
        plan: dict[_Note, list[tuple[int, PushMessage]]] = {}
        for note in notes:
            if not tokens[note.device_id]:
                self._park(note, "no open websocket and no valid push token", now)
                continue
            ttl = max(1, int((note.expires_at - now).total_seconds()))
            data = {**note.data, "notification_id": str(note.id)}
            if note.deep_link:
                data["deep_link"] = note.deep_link
            plan[note] = [(token_id, PushMessage(token=token, title=note.title, body=note.body, data=data,
                                                 collapse_key=note.collapse_key, ttl_s=ttl, ref=str(note.id)))
                          for token_id, token in tokens[note.device_id]]
        return plan

    def _send(self, plan: dict[_Note, list[tuple[int, PushMessage]]]) -> list[PushResult]:
        messages = [m for pushes in plan.values() for _, m in pushes]
        results: list[PushResult] = []
        for start in range(0, len(messages), FCM_BATCH):
            with metrics.timed("send"):
                results += self._sender.send(messages[start:start + FCM_BATCH])  # type: ignore[union-attr]
        for result in results:
            if result.outcome != "sent":
                metrics.fcm_error(result.reason)
        return results

    def _settle_fcm(self, session: Session, plan: dict[_Note, list[tuple[int, PushMessage]]],
                    results: list[PushResult], now: datetime) -> int:
        """Write FCM's answers for the notes still leased to us; a note whose status changed meanwhile (the app
        acked it on a socket) keeps that status. Returns the webhook events queued."""
        # A write first: on PostgreSQL it locks the rows, on SQLite it takes the write lock before any read,
        # so no other writer can slip in between this check and the updates below.
        current = dict(session.execute(
            update(Notification).where(Notification.id.in_([n.id for n in plan]),
                                       Notification.lease_owner == self.owner)
            .values(lease_until=now + timedelta(seconds=self.policy.lease_s))
            .returning(Notification.id, Notification.status)).all())
        answers = iter(results)
        prunes: list[dict[str, Any]] = []
        mine: list[_Note] = []
        for note, pushes in plan.items():
            outcomes = [(token_id, next(answers)) for token_id, _ in pushes]
            for token_id, result in outcomes:
                if result.outcome == "prune":
                    prunes.append({"b_id": token_id, "b_at": now, "b_reason": (result.reason or "invalid")[:64]})
            if note.id not in current:
                continue  # someone took it over after our lease ran out
            for _, r in outcomes:
                self._attempt(note, "fcm", {"prune": "pruned"}.get(r.outcome, r.outcome), r.reason, now)
            if current[note.id] == note.before[0]:
                self._settle(note, [r for _, r in outcomes], now)
            mine.append(note)
        if prunes:
            session.execute(_PRUNE, prunes)
        return self._write(session, mine, only={n.id for n in mine if current[n.id] == n.before[0]})

    def _write(self, session: Session, notes: Sequence[_Note], only: set[int] | None = None) -> int:
        """Store the notes' outcomes (``only``: just those ids' rows; all get their attempts and lose our lease)."""
        if not notes:
            return 0
        rows = [n.row() for n in notes if only is None or n.id in only]
        if rows:
            session.execute(_SETTLE, rows)
        if only is not None and len(rows) < len(notes):  # acked meanwhile: keep its status, drop our lease
            session.execute(update(Notification).where(Notification.id.in_([n.id for n in notes if n.id not in only]))
                            .values(lease_owner=None, lease_until=None))
        log = [entry for n in notes for entry in n.log]
        if log:
            session.execute(DeliveryAttempt.__table__.insert(), log)
        reported = [n for n in notes if only is None or n.id in only]
        before = {n.id: n.before for n in reported}
        return webhooks.enqueue_notification_outcomes(session, webhooks.notification_outcomes(reported, before))  # type: ignore[arg-type]

    def _attempt(self, note: _Note, channel: str, outcome: str, reason: str | None, now: datetime) -> None:
        metrics.NOTIFICATIONS.labels(channel, outcome).inc()
        note.log.append({"notification_id": note.id, "channel": channel, "outcome": outcome,
                         "reason": reason[:200] if reason else None, "at": now})

    def _settle(self, note: _Note, results: list[PushResult], now: datetime) -> None:
        note.attempts += 1
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
            self._park(note, "every push token was rejected by FCM", now)
            return
        reasons = ", ".join(sorted({r.reason or r.outcome for r in results}))
        note.status, note.last_error = "failed", f"fcm gave up after {note.attempts} attempt(s): {reasons}"[:500]
        log.warning("notification %s failed: %s", note.id, note.last_error)

    def _park(self, note: _Note, reason: str, now: datetime) -> None:
        note.status, note.last_error = "waiting", reason
        self._attempt(note, "none", "no_channel", reason, now)
