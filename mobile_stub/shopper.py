"""One simulated shopper app: registers, sends fixes on a simulated clock, collects events."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, WebSocketException

from mobile_stub.clock import Clock, Fix
from mobile_stub.summary import ShopperEvent, ShopperStats

log = logging.getLogger("mobile_stub")

APP_VERSION = "mobile-stub/0.1"
FATAL_CLOSE = {4401: "bad token", 4404: "unknown device"}
MAX_BATCH = 500  # the server's limit per request or message
MAX_RETRIES = 6  # consecutive failed (re)connections or posts before a shopper gives up
DRAIN_S = 5.0  # how long to wait for outstanding receipts at the end
LINGER_S = 0.5  # and then for events that trail the last receipt


class ShopperFailed(RuntimeError):
    """This shopper cannot go on (registration refused, token rejected, server gone)."""


class _Backgrounded(Exception):
    """The user switched away from the app: the socket closes and fixes queue up until it returns."""


class _Dropped(Exception):
    """The server ended the stream before the walk was done."""

    def __init__(self, code: int | None):
        super().__init__(code)
        self.code = code


def _backoff(attempt: int) -> float:
    return min(8.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


class Shopper:
    """A simulated app instance; ``run`` never raises, failures end up in ``stats``."""

    def __init__(
        self,
        name: str,
        fixes: list[Fix],
        *,
        http: httpx.AsyncClient,
        server_url: str,
        venue_slug: str,
        clock: Clock,
        transport: str = "ws",
        batch_s: float = 10.0,
        deadline: float | None = None,
        on_event: Callable[[ShopperEvent], None] | None = None,
        level_label: Callable[[int | None], str] | None = None,
        on_push: Callable[[str, dict[str, Any]], None] | None = None,
        background: tuple[float, float] | None = None,
        locator: str = "gps",
        consent: dict[str, Any] | None = None,
        on_registered: Callable[[Shopper], Awaitable[None]] | None = None,
        app_key: str | None = None,
    ):
        self.name, self.fixes, self.http, self.clock = name, fixes, http, clock
        self.server = server_url.rstrip("/")
        self.ws_server = "ws" + self.server.removeprefix("http")  # http->ws, https->wss
        self.venue_slug, self.transport, self.batch_s = venue_slug, transport, batch_s
        self.deadline, self.on_event, self.level_label = deadline, on_event, level_label
        self.stats = ShopperStats(name, fixes_planned=len(fixes), locator=locator)
        self.consent = consent  # what the user chose on the app's consent screen, reported after registering
        self.device_id = ""
        self.token = ""
        self.next = 0  # index of the first fix not yet handed to the transport
        self.sent_at: dict[str, float] = {}
        self.awaiting = 0  # websocket fix messages without a receipt yet
        self.on_push = on_push
        # (simulated start, seconds): the app is in the background then; pushes must come through FCM
        self.background = background
        self.seen_pushes: set[int] = set()  # delivery is at least once: show each notification once
        self.on_registered = on_registered  # what the user sets up before walking (wishlist, orders)
        self.app_key = app_key  # the venue's public app key: what a real app has built in, to register

    def _error(self, message: str) -> None:
        log.warning("%s: %s", self.name, message)
        self.stats.errors.append(message)

    def _expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    async def run(self) -> ShopperStats:
        """Register, then stream the walk; returns the stats whatever happens."""
        try:
            await self._register()
            await (self._run_ws() if self.transport == "ws" else self._run_http())
        except ShopperFailed as exc:
            self._error(str(exc))
            self.stats.failed = True
        except Exception as exc:  # one shopper's surprise must not take the swarm down
            self._error(f"{type(exc).__name__}: {exc}")
            self.stats.failed = True
        return self.stats

    async def _register(self) -> None:
        body = {"venue": self.venue_slug, "platform": "stub", "app_version": APP_VERSION}
        for attempt in range(1, MAX_RETRIES + 1):
            try:
                resp = await self.http.post(f"{self.server}/v1/devices", json=body,
                                            headers={"X-App-Key": self.app_key or ""})
            except httpx.TransportError as exc:
                if attempt == MAX_RETRIES:
                    raise ShopperFailed(f"cannot register: {exc!r}") from exc
                await asyncio.sleep(_backoff(attempt))
                continue
            if resp.status_code >= 500 and attempt < MAX_RETRIES:
                await asyncio.sleep(_backoff(attempt))
                continue
            if resp.status_code not in (200, 201):
                raise ShopperFailed(f"registration refused: {resp.status_code} {resp.text[:200]}")
            data = resp.json()
            self.device_id, self.token = str(data["device_id"]), str(data["token"])
            await self._register_push_token()
            if self.consent is not None:
                await self._report_consent()
            if self.on_registered is not None:
                await self.on_registered(self)
            return

    @property
    def push_token(self) -> str:
        """The FCM token this simulated install reports (the local FCM server accepts any)."""
        return f"stub-{self.name}-{self.device_id[:8]}"

    async def _register_push_token(self) -> None:
        resp = await self.http.put(f"{self.server}/v1/devices/{self.device_id}/push-tokens",
                                   json={"token": self.push_token, "platform": "android"},
                                   headers={"Authorization": f"Bearer {self.token}"})
        if resp.status_code != 200:
            self._error(f"push token refused: {resp.status_code} {resp.text[:200]}")

    async def _report_consent(self) -> None:
        resp = await self.http.put(f"{self.server}/v1/devices/{self.device_id}/consent", json=self.consent,
                                   headers={"Authorization": f"Bearer {self.token}"})
        if resp.status_code != 200:
            self._error(f"consent refused: {resp.status_code} {resp.text[:200]}")

    def _handle(self, msg: dict[str, Any], received: float) -> None:
        """Account for one server message (receipt, event, error, pong)."""
        kind = msg.get("type")
        if kind == "receipt":
            self.awaiting = max(0, self.awaiting - 1)
            self._receipt(msg)
        elif kind == "event":
            self._event(msg, received)
        elif kind == "notification":
            self._push(msg)
        elif kind == "qr_receipt":
            self.awaiting = max(0, self.awaiting - 1)
            self.stats.fixes_accepted += 1
            self.stats.qr_scans += 1
        elif kind == "error":
            # an error is the server's reply to a message it refused, in place of a receipt
            self.awaiting = max(0, self.awaiting - 1)
            self._error(f"server error {msg.get('code')}: {msg.get('detail')}")
        elif kind not in ("pong", "hello", "acked"):
            log.debug("%s: unexpected message %r", self.name, msg)

    def _push(self, msg: dict[str, Any]) -> None:
        note_id = int(msg.get("id", -1))
        if note_id in self.seen_pushes:
            return
        self.seen_pushes.add(note_id)
        self.stats.pushes += 1
        if self.on_push is not None:
            try:
                self.on_push(self.name, msg)
            except Exception:  # a broken callback must not stop the shopper
                log.exception("%s: on_push callback failed", self.name)

    def _receipt(self, msg: dict[str, Any]) -> None:
        self.stats.fixes_accepted += int(msg.get("accepted") or 0)
        for d in msg.get("dropped") or []:
            self.stats.dropped[str(d.get("reason", "?")) if isinstance(d, dict) else "?"] += 1

    def _event(self, event: dict[str, Any], received: float) -> None:
        sent = self.sent_at.get(str(event.get("fix_id")))
        latency = (received - sent) * 1000.0 if sent is not None else None
        zone = event.get("zone") or {}
        label = self.level_label(zone.get("level")) if self.level_label else None
        ev = ShopperEvent(self.name, event, latency, label, sent)
        self.stats.events.append(ev)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # a broken callback must not stop the shopper
                log.exception("%s: on_event callback failed", self.name)

    def _mark_sent(self, batch: list[Fix]) -> None:
        now = time.monotonic()
        for f in batch:
            self.sent_at[f.id] = now
        self.stats.fixes_sent += len(batch)
        self.next += len(batch)

    # --- websocket ------------------------------------------------------------------------------

    async def _run_ws(self) -> None:
        url = f"{self.ws_server}/v1/devices/{self.device_id}/stream?token={self.token}"
        failures = 0
        while True:
            try:
                async with websockets.connect(url, open_timeout=10, close_timeout=2) as ws:
                    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if hello.get("type") != "hello":
                        self._error(f"expected hello, got {hello!r}")
                    failures = 0
                    try:
                        if await self._ws_session(ws):
                            return
                    except _Backgrounded:
                        await ws.close()
                        start, seconds = self.background  # type: ignore[misc]
                        self.background = None
                        self.stats.backgrounded += 1
                        await self.clock.sleep_until(start + seconds)
                        continue  # back in the foreground: reconnect, queued fixes go as one batch
                    raise _Dropped(ws.close_code)
            except (_Dropped, ConnectionClosed) as exc:
                rcvd = getattr(exc, "rcvd", None)
                code = exc.code if isinstance(exc, _Dropped) else rcvd.code if rcvd is not None else None
                if code in FATAL_CLOSE:
                    raise ShopperFailed(f"stream closed {code} ({FATAL_CLOSE[code]})") from exc
                reason = f"stream dropped (close code {code})"
            except (OSError, TimeoutError, WebSocketException, json.JSONDecodeError) as exc:
                # a refused handshake carries the HTTP status (new API: .response, legacy: .status_code)
                status = getattr(getattr(exc, "response", None), "status_code", None)
                status = status or getattr(exc, "status_code", None)
                if status in (401, 403, 404):
                    raise ShopperFailed(f"stream refused with HTTP {status}") from exc
                reason = f"stream failed: {type(exc).__name__}: {exc}"
            if self._expired():
                return
            failures += 1
            if failures > MAX_RETRIES:
                raise ShopperFailed(f"{reason}; giving up after {MAX_RETRIES} reconnects")
            self.stats.reconnects += 1
            delay = _backoff(failures)
            log.warning("%s: %s; reconnecting in %.1f s", self.name, reason, delay)
            self.awaiting = 0
            await asyncio.sleep(delay)

    async def _ws_session(self, ws: Any) -> bool:
        """Send and receive on one connection; True when the walk is done, False if it dropped."""
        recv = asyncio.create_task(self._ws_receive(ws))
        send = asyncio.create_task(self._ws_send(ws))
        try:
            done, _ = await asyncio.wait({recv, send}, return_when=asyncio.FIRST_COMPLETED)
            if send not in done:
                return False
            send.result()  # surfaces a send error as a dropped connection, and a switch to background
            end = time.monotonic() + DRAIN_S
            while self.awaiting and time.monotonic() < end and not recv.done():
                await asyncio.sleep(0.05)
            await asyncio.wait({recv}, timeout=LINGER_S)
            return True
        except ConnectionClosed:
            return False
        finally:
            for task in (recv, send):
                task.cancel()
            await asyncio.gather(recv, send, return_exceptions=True)

    async def _ws_receive(self, ws: Any) -> None:
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                self._error(f"unreadable message {raw[:80]!r}")
                continue
            if isinstance(msg, dict):
                self._handle(msg, time.monotonic())
                if msg.get("type") == "notification":  # shown: ack it, repeats included
                    await ws.send(json.dumps({"type": "ack", "ids": [msg.get("id")]}))

    async def _ws_send(self, ws: Any) -> None:
        fixes = self.fixes
        while self.next < len(fixes):
            if self.background is not None and fixes[self.next].t >= self.background[0]:
                raise _Backgrounded
            now = time.monotonic()
            first = fixes[self.next]
            due = self.next
            while (due < len(fixes) and due - self.next < MAX_BATCH and fixes[due].kind == first.kind != "qr"
                   and self.clock.due(fixes[due].t) <= now):
                due += 1
            if due - self.next > 1:
                # behind schedule (after a reconnect, or a speed-up too high): catch up in one message
                batch = fixes[self.next:due]
            else:
                await self.clock.sleep_until(first.t)
                if self._expired():
                    return
                batch = [first]
            await ws.send(json.dumps(_ws_message(batch)))
            self.awaiting += 1
            self._mark_sent(batch)
            if self._expired():
                return

    async def identity_code(self, store_id: int | None = None) -> str:
        """What the app shows staff: a fresh single-scan identity code (POST .../identity-codes)."""
        resp = await self.http.post(f"{self.server}/v1/devices/{self.device_id}/identity-codes",
                                    json={"store_id": store_id} if store_id is not None else None,
                                    headers={"Authorization": f"Bearer {self.token}"})
        if resp.status_code != 201:
            raise ShopperFailed(f"identity code refused: {resp.status_code} {resp.text[:200]}")
        return str(resp.json()["code"])

    # --- http -----------------------------------------------------------------------------------

    async def _run_http(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        fixes = self.fixes
        while self.next < len(fixes):
            # a batch is every item of one kind taken within batch_s of its first one, posted when the last is taken
            end = self.next
            first = fixes[self.next]
            limit = first.t + self.batch_s
            while (end < len(fixes) and end - self.next < MAX_BATCH and fixes[end].t < limit
                   and fixes[end].kind == first.kind and (first.kind != "qr" or end == self.next)):
                end += 1
            batch = fixes[self.next:end]
            await self.clock.sleep_until(batch[-1].t)
            if self._expired():
                return
            path, body = _http_request(batch)
            await self._post(f"{self.server}/v1/devices/{self.device_id}/{path}", headers, batch, body)

    async def _post(self, url: str, headers: dict[str, str], batch: list[Fix], body: dict[str, Any]) -> None:
        for attempt in range(1, MAX_RETRIES + 1):
            try:
                sent = time.monotonic()
                resp = await self.http.post(url, headers=headers, json=body)
            except httpx.TransportError as exc:
                reason = f"POST failed: {exc!r}"
            else:
                if resp.status_code == 200:
                    self._mark_sent(batch)
                    for f in batch:
                        self.sent_at[f.id] = sent
                    data = resp.json()
                    if batch[0].kind == "qr":
                        self.stats.fixes_accepted += 1
                        self.stats.qr_scans += 1
                    else:
                        self._receipt(data)
                    received = time.monotonic()
                    for ev in data.get("events") or []:
                        self._event(ev, received)
                    return
                if resp.status_code in (401, 403, 404):
                    raise ShopperFailed(f"positions refused: {resp.status_code} {resp.text[:200]}")
                if resp.status_code < 500:
                    # the server will refuse this batch again: report it and move on
                    self._error(f"batch of {len(batch)} rejected: {resp.status_code} {resp.text[:200]}")
                    self.next += len(batch)
                    return
                reason = f"POST -> {resp.status_code}"
            if attempt == MAX_RETRIES or self._expired():
                raise ShopperFailed(f"{reason}; giving up")
            log.warning("%s: %s; retrying", self.name, reason)
            await asyncio.sleep(_backoff(attempt))


def _ws_message(batch: list[Fix]) -> dict[str, Any]:
    """The websocket message carrying ``batch`` (all of one kind)."""
    kind = batch[0].kind
    if kind == "qr":
        return {"type": "qr", **batch[0].body}
    if kind == "scan":
        return {"type": "beacons", "scans": [f.body for f in batch]}
    if len(batch) == 1:
        return {"type": "fix", **batch[0].body}
    return {"type": "fixes", "fixes": [f.body for f in batch]}


def _http_request(batch: list[Fix]) -> tuple[str, dict[str, Any]]:
    """(path under the device, JSON body) of the HTTP request carrying ``batch``."""
    kind = batch[0].kind
    if kind == "qr":
        return "qr-scans", batch[0].body
    if kind == "scan":
        return "beacon-scans", {"scans": [f.body for f in batch]}
    return "positions", {"fixes": [f.body for f in batch]}
