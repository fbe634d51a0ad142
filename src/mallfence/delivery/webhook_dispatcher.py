"""The webhook delivery loop: lease due rows, POST them signed, in order per endpoint, retry with backoff.

See ``webhooks`` for what is queued and how receivers verify the signature.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mallfence.db import transaction
from mallfence.delivery.models import WebhookEndpoint
from mallfence.delivery.webhooks import USER_AGENT, D, _running, sign
from mallfence.worker import PollingWorker

log = logging.getLogger("mallfence.webhooks")

@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    batch: int = 100
    timeout_s: float = 5.0
    max_attempts: int = 10  # with the backoff below: 4 min, 8, 16, … capped at 8 h; about a day in all
    backoff_base_s: float = 240.0
    backoff_cap_s: float = 8 * 3600.0
    max_age_s: float = 26 * 3600.0  # a row waiting behind a failing one gives up at this age too
    endpoint_budget_s: float = 30.0  # an endpoint's share of one pass; its rest goes in the next pass
    lease_s: float = 120.0  # > budget + one slow request: a live worker never loses its rows
    workers: int = 8  # endpoints served at once
    retention_s: float = 7 * 86400.0  # delivered/failed rows are kept this long for the deliveries list
    trust_env: bool = True  # HTTPS_PROXY etc. (an egress proxy is how to fence webhooks off internal hosts)

    def backoff(self, attempts: int, retry_after_s: float | None) -> float:
        """Exponential with full jitter, never sooner than the endpoint asked for (within a day)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(0, attempts - 1))
        return max(min(retry_after_s or 0.0, 86400.0), random.uniform(ceiling / 2, ceiling))


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    endpoint_id: int
    url: str
    secret: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Answer:
    code: int | None  # HTTP status, None when no response came
    error: str | None  # None on 2xx
    retry_after_s: float | None = None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class WebhookDispatcher(PollingWorker):
    """Sends due webhook deliveries. ``run_once`` for tests and tools; ``start`` runs it in a thread."""

    def __init__(self, sessions: sessionmaker[Session], *, policy: WebhookPolicy | None = None,
                 poll_s: float = 1.0):
        self._sessions = sessions
        self.policy = policy or WebhookPolicy()
        self._http = httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False,
                                  trust_env=self.policy.trust_env, headers={"User-Agent": USER_AGENT},
                                  limits=httpx.Limits(max_connections=4 * self.policy.workers))
        self._pool = ThreadPoolExecutor(self.policy.workers, thread_name_prefix="webhook")
        self._busy: set[int] = set()  # endpoints a worker of ours is sending to: not claimed again meanwhile
        self._lock = threading.Lock()
        self._pruned_at = 0.0
        super().__init__("webhook-dispatcher", poll_s)

    def start(self) -> None:
        _running.add(self)
        super().start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the requests in flight; rows not started are released for the next run."""
        _running.discard(self)
        super().stop(timeout_s)
        self._pool.shutdown(wait=True)
        self._http.close()

    def tick(self) -> int:
        claimed = self._pass(wait=False)
        if time.monotonic() - self._pruned_at > 3600:
            self._pruned_at = time.monotonic()
            self.prune()
        return claimed

    def run_once(self) -> int:
        """Claim one batch and deliver it before returning; how many deliveries were claimed."""
        return self._pass(wait=True)

    def prune(self) -> int:
        """Forget finished rows after ``retention_s`` (a finished row's next_attempt_at is about its end)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.policy.retention_s)
        with transaction(self._sessions) as session:
            done = session.execute(delete(D).where(D.status.in_(("delivered", "failed")), D.next_attempt_at < cutoff))
        return int(done.rowcount or 0)

    def _pass(self, *, wait: bool) -> int:
        with self._lock:
            busy = set(self._busy)
        if len(busy) >= self.policy.workers:
            return 0  # every worker is taken: claiming more would only let leases tick in a queue
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self.policy.lease_s)
        with transaction(self._sessions) as session:
            jobs = self._claim(session, now, lease, busy)
        groups: dict[int, list[Job]] = defaultdict(list)
        for job in jobs:
            groups[job.endpoint_id].append(job)
        with self._lock:
            self._busy |= set(groups)
        futures = [self._pool.submit(self._send_group, group, lease) for group in groups.values()]
        for future in futures if wait else ():
            future.result()
        return len(jobs)

    def _claim(self, session: Session, now: datetime, lease: datetime, busy: set[int]) -> list[Job]:
        """Lease due rows of active endpoints, minus those that would overtake an earlier row waiting to retry."""
        active = select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(True))
        if busy:
            active = active.where(WebhookEndpoint.id.not_in(busy))
        due = (select(D.id).where(D.status == "pending", D.next_attempt_at <= now,
                                  or_(D.lease_until.is_(None), D.lease_until < now), D.endpoint_id.in_(active))
               .order_by(D.id).limit(self.policy.batch))
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = list(session.scalars(update(D).where(D.id.in_(due.scalar_subquery())).values(lease_until=lease)
                                   .returning(D.id)))
        if not ids:
            return []
        rows = session.execute(select(D, WebhookEndpoint.url, WebhookEndpoint.secret)
                               .join(WebhookEndpoint, WebhookEndpoint.id == D.endpoint_id)
                               .where(D.id.in_(ids)).order_by(D.id)).all()
        # Earlier rows of the same endpoints that are not ours to send now: backing off, or leased elsewhere.
        blockers = {eid: (first, soonest) for eid, first, soonest in session.execute(
            select(D.endpoint_id, func.min(D.id), func.min(D.next_attempt_at))
            .where(D.status == "pending", D.endpoint_id.in_({r[0].endpoint_id for r in rows}), D.id < max(ids),
                   or_(D.next_attempt_at > now, and_(D.lease_until > now, D.lease_until != lease)))
            .group_by(D.endpoint_id))}
        jobs = []
        for row, url, secret in rows:
            blocker = blockers.get(row.endpoint_id)
            if blocker is not None and row.id > blocker[0]:
                row.lease_until = None  # wait until the earlier row's turn (re-checked then)
                row.next_attempt_at = max(blocker[1], now + timedelta(seconds=1))
                continue
            jobs.append(Job(row.id, row.endpoint_id, url, secret, row.event_type, row.payload, row.attempts,
                            row.created_at))
        return jobs

    def _send_group(self, jobs: list[Job], lease: datetime) -> None:
        """One endpoint's rows, in order; stops at the first that is not delivered so none overtakes it."""
        deadline = time.monotonic() + self.policy.endpoint_budget_s
        try:
            for i, job in enumerate(jobs):
                if self._stop.is_set() or time.monotonic() > deadline or datetime.now(UTC) >= lease:
                    self._hold(jobs[i:], lease, None)
                    return
                answer = self._post(job)
                next_at = self._record(job, answer, lease)
                if answer.error is not None:
                    if answer.code != 410:  # after a 410 there is nothing left to hold
                        self._hold(jobs[i + 1:], lease, next_at)
                    return
        except Exception:  # the rows keep their lease and go out again when it runs out
            log.exception("webhook delivery to endpoint %s failed", jobs[0].endpoint_id)
        finally:
            with self._lock:
                self._busy.discard(jobs[0].endpoint_id)
            self._wake.set()

    def _post(self, job: Job) -> Answer:
        body = json.dumps(job.payload, separators=(",", ":"), ensure_ascii=False).encode()
        ts = int(time.time())  # signed at each try, so a retry a day later still passes the receiver's window
        headers = {"Content-Type": "application/json", "Mallfence-Event": job.event_type,
                   "Mallfence-Delivery": str(job.id), "Mallfence-Timestamp": str(ts),
                   "Mallfence-Signature": sign(job.secret, ts, body)}
        try:
            with self._http.stream("POST", job.url, content=body, headers=headers) as r:
                text = b""
                for chunk in r.iter_bytes():  # enough of the body to explain an error; never all of it
                    text += chunk
                    if len(text) >= 200:
                        break
        except httpx.TimeoutException as exc:
            return Answer(None, f"timeout after {self.policy.timeout_s:g} s ({type(exc).__name__})")
        except Exception as exc:  # refused, reset, TLS, a URL httpx cannot use…: a failed try like any other
            return Answer(None, f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= r.status_code < 300:
            return Answer(r.status_code, None)
        if r.is_redirect:  # not followed: a redirect could point anywhere, and the signature is for this URL
            return Answer(r.status_code, f"HTTP {r.status_code} redirect to {r.headers.get('location')!r} "
                                         "(not followed: register the final URL)"[:500])
        detail = text[:200].decode(errors="replace").strip()
        return Answer(r.status_code, f"HTTP {r.status_code} {r.reason_phrase}: {detail}"[:500],
                      _retry_after(r.headers.get("retry-after")))

    def _record(self, job: Job, answer: Answer, lease: datetime) -> datetime | None:
        """Store the outcome of one try; returns when it is retried (None: no retry)."""
        now = datetime.now(UTC)
        attempts = job.attempts + 1
        mine = (D.id == job.id, D.lease_until == lease)  # unchanged if our lease ran out and another took it
        with transaction(self._sessions) as session:
            if answer.error is None:
                session.execute(update(D).where(*mine).values(
                    status="delivered", attempts=attempts, delivered_at=now, last_status_code=answer.code,
                    last_error=None, lease_until=None))
                return None
            if answer.code == 410:  # the receiver says the endpoint is gone for good: stop sending to it
                session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == job.endpoint_id)
                                .values(active=False))
                session.execute(update(D).where(*mine).values(
                    status="failed", attempts=attempts, last_status_code=410, lease_until=None,
                    last_error=f"{answer.error} (endpoint deactivated)"[:500]))
                session.execute(update(D).where(D.endpoint_id == job.endpoint_id, D.status == "pending").values(
                    status="failed", lease_until=None, last_error=f"endpoint deactivated: delivery {job.id} got 410"))
                log.warning("webhook endpoint %s answered 410 Gone: deactivated", job.endpoint_id)
                return None
            give_up = attempts >= self.policy.max_attempts or (
                now - job.created_at).total_seconds() > self.policy.max_age_s
            next_at = now + timedelta(seconds=self.policy.backoff(attempts, answer.retry_after_s))
            error = f"gave up after {attempts} attempt(s): {answer.error}"[:500] if give_up else answer.error
            session.execute(update(D).where(*mine).values(
                status="failed" if give_up else "pending", attempts=attempts, last_status_code=answer.code,
                last_error=error, next_attempt_at=now if give_up else next_at, lease_until=None))
            return None if give_up else next_at

    def _hold(self, jobs: list[Job], lease: datetime, until: datetime | None) -> None:
        """Release rows not sent in this pass; ``until`` keeps them behind an earlier row's retry."""
        if not jobs:
            return
        now = datetime.now(UTC)
        values: dict[str, Any] = {"lease_until": None}
        if until is not None:
            values["next_attempt_at"] = until
        with transaction(self._sessions) as session:
            ids = [j.id for j in jobs]
            session.execute(update(D).where(D.id.in_(ids), D.lease_until == lease).values(**values))
            cutoff = now - timedelta(seconds=self.policy.max_age_s)  # waited too long behind failures: give up
            session.execute(update(D).where(D.id.in_(ids), D.status == "pending", D.created_at < cutoff).values(
                status="failed", last_error="gave up: older than the retry window while earlier deliveries failed"))
