"""The live parts of a running mallfence, built once by the app's lifespan and shared."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mallfence.bus import Bus, LocalBus
from mallfence.config import Settings
from mallfence.presence.machine import DeviceState
from mallfence.presence.store import InMemoryStateStore
from mallfence.ratelimit import TokenBuckets
from mallfence.tracking.counters import VenueCounters
from mallfence.tracking.hub import Directory, Hub
from mallfence.tracking.listeners import EventBatch, Listener
from mallfence.tracking.unknown import UnknownBeacons
from mallfence.venues.snapshot import SnapshotRegistry

if TYPE_CHECKING:
    from mallfence.delivery.dispatcher import Dispatcher
    from mallfence.delivery.webhook_dispatcher import WebhookDispatcher
    from mallfence.engagement.candidates import PushCandidate
    from mallfence.tracking.group import GroupIngest

log = logging.getLogger("mallfence")


class StateStore(Protocol):
    """Where device presence lives between fixes: ``InMemoryStateStore`` or ``RedisStateStore``."""

    def locked(self, device_id: str) -> AbstractContextManager[None]: ...

    def locked_many(self, device_ids: Collection[str]) -> AbstractContextManager[None]: ...

    def get(self, device_id: str) -> DeviceState: ...

    def put(self, device_id: str, state: DeviceState) -> None: ...

    def due_touch(self, device_id: str, every_s: float) -> bool: ...

    def silent_since(self, seconds: float) -> list[str]: ...

    def devices_in_zone(self, zone_id: int) -> list[str]: ...

    def forget(self, device_id: str) -> None: ...


@dataclass
class Shared:
    """What replicas share: presence, the bus and the socket directory (all in process without Redis)."""

    states: StateStore
    bus: Bus
    directory: Directory | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def shared_parts(settings: Settings) -> Shared:
    if not settings.redis_url:
        return Shared(states=InMemoryStateStore(), bus=LocalBus())
    # Imported here: a single-process install needs no Redis client.
    from mallfence.bus import RedisBus
    from mallfence.presence.redis_store import RedisSocketDirectory, RedisStateStore, connect

    client = connect(settings.redis_url)
    try:
        client.ping()
    except Exception as exc:  # start anyway: ingest answers 503 and the bus reconnects once Redis is up
        log.warning("Redis at %s is not reachable yet (%s); presence requests fail until it is",
                    settings.redis_url, exc)
    p = settings.redis_prefix
    states = RedisStateStore(client, prefix=p, ttl_s=settings.redis_state_ttl_s,
                             lock_wait_s=settings.redis_lock_wait_s, lock_ttl_s=settings.redis_lock_ttl_s)
    return Shared(states=states, bus=RedisBus(settings.redis_url, prefix=p),
                  directory=RedisSocketDirectory(client, prefix=p, ttl_s=settings.redis_socket_ttl_s),
                  closers=[client.close])


@dataclass
class Limits:
    """The rate limits of this process (see mallfence.ratelimit)."""

    device: TokenBuckets
    operator: TokenBuckets
    public: TokenBuckets

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(device=TokenBuckets(settings.device_rate_per_s, settings.device_burst, kind="device"),
                   operator=TokenBuckets(settings.operator_rate_per_s, settings.operator_burst, kind="operator"),
                   public=TokenBuckets(settings.public_rate_per_min / 60.0, max(1.0, settings.public_rate_per_min),
                                       kind="public"))


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    snapshots: SnapshotRegistry
    states: StateStore
    hub: Hub
    dispatcher: Dispatcher | None = field(default=None)
    webhooks: WebhookDispatcher | None = field(default=None)
    bus: Bus = field(default_factory=LocalBus)
    replica_id: str = "local"
    closers: list[Callable[[], None]] = field(default_factory=list)
    unknown_beacons: UnknownBeacons = field(default_factory=UnknownBeacons)
    counters: VenueCounters = field(default_factory=VenueCounters)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_purge: float = float("-inf")  # time.monotonic() of the last retention pass
    # Called in the transaction that stores events (tracking.listeners): webhooks, engagement, commerce.
    listeners: list[Listener] = field(default_factory=list)
    # What else may push on an event besides campaigns (commerce: wishlists, orders), and the stock check
    # offers naming products go through (``out_of_stock(session, store_id, skus) -> skus out``).
    push_sources: list[Callable[[EventBatch], list[PushCandidate]]] = field(default_factory=list)
    out_of_stock: Callable[[Session, int, Sequence[str]], set[str]] | None = None
    # A shopper's spending per local day (commerce purchases), for segments: ``spend(session, shopper, today)``.
    spend: Callable[[Session, str, date], list[tuple[date, float]]] | None = None
    limits: Limits | None = None  # built from settings by main.build_runtime
    group: GroupIngest | None = None  # websocket fixes, applied many at a time (started with the app)

    @property
    def rate(self) -> Limits:
        if self.limits is None:
            self.limits = Limits.of(self.settings)
        return self.limits

    def wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def close(self) -> None:
        """Withdraw this replica's sockets, stop listening, close clients (the engine is the caller's)."""
        for close in (self.hub.close, self.bus.close, self.snapshots.close, *self.closers):
            try:
                close()
            except Exception:  # shutting down: close the rest regardless
                log.exception("closing %r failed", close)
