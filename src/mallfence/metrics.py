"""Prometheus metrics of this process, served at ``/metrics``.

Every process (replica, ``mallfence dispatch``) keeps and serves its own numbers; Prometheus sums them
across targets. Labels are bounded sets only: a stage, a source, an event kind, a channel, an outcome, an
FCM error code (unknown codes collapse into ``other``), a reason. No device id, shopper id or venue slug
ever becomes a label: per-venue counts are in ``GET /v1/venues/{slug}/ingest-stats``, and a chain with
hundreds of venues would multiply every series by that number.

Access: with ``MALLFENCE_METRICS_TOKEN`` set, a scrape needs ``Authorization: Bearer <token>``; without
it, only loopback clients (127.0.0.1, ::1) are answered, so a server bound to a public address does not
publish its internals to anyone who asks. Behind a proxy on the same host, set the token.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

# Seconds: from 0.1 ms (a match of one fix) to 10 s (an FCM call that waits on retries).
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

STAGES = ("parse", "validate", "match", "presence", "store", "decision", "outbox", "send")
STAGE_SECONDS = Histogram(
    "mallfence_stage_seconds",
    "Time spent per pipeline stage and call: parse (websocket JSON + schema), validate (batch checks), match "
    "(zones of a batch), presence (state machine + spoofing checks of a batch), store (the events' "
    "transaction, listeners included), decision (engagement rules of a batch of events), outbox (writing "
    "notifications), send (one FCM call of a dispatcher pass)",
    ["stage"], buckets=_BUCKETS,
)
HTTP_SECONDS = Histogram(
    "mallfence_http_request_seconds", "HTTP requests by route template, method and status class",
    ["route", "method", "status"], buckets=_BUCKETS,
)
FIXES = Counter("mallfence_fixes_total", "Fixes run through presence (stale included, too old not), by source",
                ["source"])
EVENTS = Counter("mallfence_events_total", "Zone and scan events stored and published, by kind", ["kind"])
NOTIFICATIONS = Counter(
    "mallfence_notification_attempts_total",
    "Delivery attempts recorded by the dispatcher, by channel (ws, fcm, none) and outcome "
    "(sent, retry, failed, pruned, expired, no_channel)", ["channel", "outcome"],
)
NOTIFICATIONS_CREATED = Counter("mallfence_notifications_created_total", "Notifications written to the outbox")
FCM_ERRORS = Counter("mallfence_fcm_errors_total", "FCM answers other than success, by error code", ["code"])
WEBSOCKETS = Gauge("mallfence_websocket_connections", "Open websockets on this process, by channel",
                   ["channel"])
RATE_LIMITED = Counter("mallfence_rate_limited_total", "Calls refused by a rate limit, by limit", ["kind"])
DROPPED = Counter("mallfence_fixes_dropped_total",
                  "Fixes or scans dropped by ingest, by reason (stale, too_old, scans_too_old)", ["reason"])
WS_MESSAGE_SECONDS = Histogram(
    "mallfence_ws_message_seconds", "Device websocket messages: from received to its reply queued (events of its "
    "fixes are queued before the reply), by message type", ["type"], buckets=_BUCKETS,
)
GROUP_MESSAGES = Histogram(
    "mallfence_ingest_group_messages",
    "Position requests and websocket fix messages applied together in one group (one transaction)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
FLAGGED = Counter("mallfence_fixes_flagged_total", "Fixes flagged by the spoofing checks, by reason", ["reason"])

_STAGE = {stage: STAGE_SECONDS.labels(stage) for stage in STAGES}
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_MAX_CODES = 40  # FCM has about a dozen codes; anything past this many distinct ones is noise
_codes: set[str] = set()


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Observe the time the block takes into ``mallfence_stage_seconds{stage=…}``."""
    hist = _STAGE[stage]
    t0 = time.perf_counter()
    try:
        yield
    finally:
        hist.observe(time.perf_counter() - t0)


def observe(stage: str, seconds: float) -> None:
    _STAGE[stage].observe(seconds)


def fcm_error(reason: str | None) -> None:
    """Count one FCM failure by its code: the leading word of ``reason`` (``INVALID_MESSAGE: …`` →
    ``INVALID_MESSAGE``); at most ``_MAX_CODES`` distinct codes, the rest are ``other``."""
    match = _CODE.match(reason or "")
    code = match.group(0) if match else "other"
    if code not in _codes:
        if len(_codes) >= _MAX_CODES:
            code = "other"
        else:
            _codes.add(code)
    FCM_ERRORS.labels(code).inc()


def ingest_counter(name: str, n: int = 1) -> None:
    """The same names as tracking.counters (``fixes_too_old``, ``fixes_flagged_<why>``), without the venue."""
    if name.startswith("fixes_flagged_"):
        FLAGGED.labels(name.removeprefix("fixes_flagged_")).inc(n)
    elif name == "fixes_too_old":
        DROPPED.labels("too_old").inc(n)
    else:
        DROPPED.labels(name).inc(n)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def endpoint(token: str | None):
    """The ``/metrics`` handler for this token policy (see the module docstring)."""
    expected = f"Bearer {token}".encode() if token else None

    def metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return Response('{"detail":"a bearer token is required for /metrics"}', status_code=401,
                                media_type="application/json", headers={"WWW-Authenticate": "Bearer"})
        elif not _loopback(request):
            return Response('{"detail":"/metrics answers loopback clients only unless MALLFENCE_METRICS_TOKEN '
                            'is set"}', status_code=403, media_type="application/json")
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return metrics
