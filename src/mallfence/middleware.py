"""ASGI middleware: request size limit, security headers, and the audit log of operator and staff actions.

Plain ASGI rather than BaseHTTPMiddleware: they sit in front of the ingest hot path, where a per-request
task and body copy would cost more than the checks themselves.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mallfence import logs, metrics
from mallfence.db import transaction
from mallfence.privacy import pseudonym

log = logging.getLogger("mallfence.audit")
access = logging.getLogger("mallfence.access")
Headers = list[tuple[bytes, bytes]]

# Reads that reveal personal data are audited like changes.
PERSONAL_PARAMS = ("shopper_id", "device_id")
AUDITED_READS = ("/export", "/purchases", "/decisions", "/audit")
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The console's own files and the API on the same origin, nothing else: no inline script or style, no CDN.
# connect-src 'self' covers the live websocket on the same host (ws: / wss:, CSP level 3).
CONSOLE_CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 (imports stream to limits of their own)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "/import" in scope["path"]:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _refuse(send, 413, f"request body of {int(value)} bytes is over the {self.limit}-byte limit")
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, f"request body is over the {self.limit}-byte limit")


class _TooLarge(Exception):
    pass


class SecurityHeaders:
    """The headers a JSON API should send; HSTS in production (behind TLS)."""

    def __init__(self, app: ASGIApp, *, hsts: bool):
        self.app = app
        self.common: Headers = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                                (b"referrer-policy", b"no-referrer"),
                                (b"permissions-policy", b"geolocation=(), camera=(), microphone=()")]
        if hsts:
            self.common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        # the API docs load their page script from a CDN; the console runs its own scripts
        if path.startswith(("/docs", "/redoc")):
            csp = None
        elif path == "/console" or path.startswith("/console/"):
            csp = CONSOLE_CSP
        else:
            csp = API_CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.common + (
                    [(b"content-security-policy", csp)] if csp else [])
            await send(message)

        await self.app(scope, receive, with_headers)


class AuditLog:
    """After each request by an operator or a staff member that changed (or read personal) data: a row in
    the audit log saying who, what, which venue, and how it ended."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, int] = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        state = scope.get("state") or {}
        principal = state.get("principal")
        method = scope["method"]
        reads = method in ("GET", "HEAD") and not scope["path"].endswith(AUDITED_READS)
        if principal is None or state.get("self_audited") or reads:
            return
        route = scope.get("route")
        action = f"{method} {getattr(route, 'path', scope['path'])}"[:64]
        params = dict(scope.get("path_params") or {})
        try:
            await run_in_threadpool(_write, scope["app"].state.runtime, principal, action, params,
                                    status.get("code", 500))
        except Exception:  # the request already happened: losing its audit row must be loud, not fatal
            log.exception("audit log write failed for %s by %s", action, principal.actor)


def _write(rt: Any, principal: Any, action: str, params: dict[str, Any], status: int) -> None:
    from sqlalchemy import select

    from mallfence.auth.models import AuditEntry
    from mallfence.venues.models import Venue

    slug = params.pop("slug", None)
    # Shoppers and devices appear by a one-way hash: the audit log outlives an erasure.
    target = ", ".join(f"{k}={pseudonym(str(v)) if k in PERSONAL_PARAMS else v}"
                       for k, v in params.items())[:200] or None
    with transaction(rt.sessions) as session:
        venue_id = session.scalar(select(Venue.id).where(Venue.slug == slug)) if slug else None
        session.add(AuditEntry(actor=principal.actor, action=action, venue_id=venue_id, target=target,
                               status=status, detail={"slug": slug} if slug and venue_id is None else {}))


class RequestContext:
    """Outermost: the request id (the caller's ``X-Request-Id`` or a new one, sent back on the response),
    the context of the request's log lines, the HTTP latency histogram by route template, and with
    ``access_log`` one ``mallfence.access`` line per request (path without the query string: tokens)."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False):
        self.app, self.access_log = app, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        ctx = {"request_id": logs.incoming_request_id(given)}
        token = logs._context.set(ctx)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            await self._http(scope, receive, send, ctx)
        finally:
            logs._context.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, ctx: dict[str, str]) -> None:
        status = {"code": 500}
        rid = ctx["request_id"].encode()

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, with_id)
        finally:
            elapsed = time.perf_counter() - t0
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_SECONDS.labels(template, scope["method"], f"{status['code'] // 100}xx").observe(elapsed)
            if self.access_log:
                access.info("%s %s %s", scope["method"], scope["path"], status["code"],
                            extra={"route": template, "status": status["code"],
                                   "duration_ms": round(elapsed * 1000, 2)})
