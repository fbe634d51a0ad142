"""Messages between replicas: websocket pushes for a socket held elsewhere, "venue N changed" notices.

``LocalBus`` is the single-process case (handlers called in the publisher's thread). ``RedisBus`` uses
Redis pub/sub on a background thread that reconnects with backoff when Redis goes away, logs the
outage and its end, and never lets an error escape into the server. Pub/sub is fire-and-forget: what
is published during an outage is lost, so ``on_reconnect`` callbacks let owners resynchronise (reload
venues, re-announce sockets) once the subscription is back.

Messages are JSON objects; channel names are given without the deployment prefix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis

log = logging.getLogger("mallfence.bus")

Handler = Callable[[dict[str, Any]], None]

BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 3.0  # a returning Redis is noticed within seconds; a dead one costs one attempt per 3 s
POLL_S = 0.25  # how often the listener looks at new subscriptions and the stop flag


class Bus(Protocol):
    def subscribe(self, channel: str, handler: Handler) -> None: ...

    def publish(self, channel: str, message: dict[str, Any]) -> bool: ...

    def on_reconnect(self, callback: Callable[[], None]) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


def _call(handler: Callable[..., None], *args: Any) -> None:
    try:
        handler(*args)
    except Exception:  # one bad message or callback must not stop the others
        log.exception("bus handler %r failed", handler)


class LocalBus:
    """One process: publishing calls this process's handlers directly."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def publish(self, channel: str, message: dict[str, Any]) -> bool:
        for handler in list(self._handlers.get(channel, ())):
            _call(handler, message)
        return True

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Never called: an in-process bus cannot lose messages."""

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class RedisBus:
    """Redis pub/sub: one listener thread per process, publishing from any thread."""

    def __init__(self, url: str, *, prefix: str = "mf:") -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # The listener gets no retries inside redis-py: a lost connection must reach our loop, which
        # resubscribes and runs the reconnect callbacks (redis-py's silent resubscribe would skip them).
        self._client: redis.Redis = redis.Redis.from_url(
            url, decode_responses=True, client_name="mallfence-bus", socket_connect_timeout=1.0,
            socket_timeout=2.0, health_check_interval=10, retry=Retry(NoBackoff(), 0))
        # Publishing retries once: the first publish after a Redis restart may meet a dead pooled socket.
        self._publisher: redis.Redis = redis.Redis.from_url(
            url, decode_responses=True, client_name="mallfence-bus-pub", socket_connect_timeout=1.0,
            socket_timeout=2.0, retry=Retry(NoBackoff(), 1))
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._prefix = prefix
        self._handlers: dict[str, list[Handler]] = {}
        self._reconnect: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # subscribed after the listener started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publish_failed_at = 0.0
        self.connected = threading.Event()  # set while the subscription is live (tests, health)

    def subscribe(self, channel: str, handler: Handler) -> None:
        full = self._prefix + channel
        with self._lock:
            self._handlers.setdefault(full, []).append(handler)
            self._pending.add(full)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect.append(callback)

    def publish(self, channel: str, message: dict[str, Any]) -> bool:
        """False when Redis is unreachable (logged at most every 10 s): callers never see the error."""
        try:
            self._publisher.publish(self._prefix + channel, json.dumps(message, separators=(",", ":")))
            return True
        except self._errors as exc:
            now = time.monotonic()
            if now - self._publish_failed_at > 10:
                log.warning("bus: could not publish on %s: %s", channel, exc)
                self._publish_failed_at = now
            return False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="mallfence-bus", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()
        self._publisher.close()

    # -- listener thread ----------------------------------------------------------------------------
    def _listen(self) -> None:
        backoff, down_since = BACKOFF_START_S, 0.0
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                with self._lock:
                    channels = list(self._handlers)
                    self._pending.clear()
                if channels:
                    pubsub.subscribe(*channels)
                self.connected.set()
                if down_since:  # whatever was published meanwhile is lost: let owners resync
                    log.warning("bus: Redis is back after %.1f s; resubscribed", time.monotonic() - down_since)
                    for callback in self._reconnect:
                        _call(callback)
                backoff, down_since = BACKOFF_START_S, 0.0
                self._pump(pubsub)
            except self._errors as exc:
                self.connected.clear()
                if not down_since:
                    down_since = time.monotonic()
                    log.warning("bus: lost Redis (%s: %s); reconnecting with backoff", type(exc).__name__, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP_S)
            except Exception:  # a bug, not an outage: keep listening rather than go deaf silently
                self.connected.clear()
                log.exception("bus: listener failed; restarting it")
                down_since = down_since or time.monotonic()
                self._stop.wait(backoff)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection may fail too
                    pubsub.close()
        self.connected.clear()

    def _pump(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending, self._pending = self._pending, set()
            if pending:
                pubsub.subscribe(*pending)
            message = pubsub.get_message(timeout=POLL_S)
            if message is None or message.get("type") != "message":
                continue
            try:
                body = json.loads(message["data"])
            except (TypeError, ValueError):
                log.warning("bus: dropped a message that is not JSON on %s", message.get("channel"))
                continue
            with self._lock:
                handlers = list(self._handlers.get(message["channel"], ()))
            for handler in handlers:
                _call(handler, body)
