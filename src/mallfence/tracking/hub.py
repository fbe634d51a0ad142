"""Live channel to open apps: events for a device go to each of its open websockets.

Ingest runs in worker threads; websockets live on the event loop. ``publish`` is thread-safe and
never blocks the caller on the loop: it hands messages to the loop, which queues them per connection.

With several replicas (a ``Directory`` and a ``Bus``), the hub also records which replica holds each
device's sockets, so ``connected`` is true cluster-wide and ``publish`` forwards messages over the bus
to the replica channel ``replica:{id}`` of every other holder. Directory writes happen on a worker
thread (never on the event loop, which a slow Redis must not stall); that thread also refreshes every
local device's entry before it expires, and re-announces them all after the bus reconnects (a
restarted Redis has forgotten them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Collection
from typing import Any, Protocol

from mallfence.bus import Bus

log = logging.getLogger("mallfence.hub")


class Directory(Protocol):
    """Where devices' websockets are: replica ids per device, entries expiring unless refreshed."""

    ttl_s: float

    def claim(self, replica_id: str, device_ids: Collection[str]) -> None: ...

    def release(self, replica_id: str, device_ids: Collection[str]) -> None: ...

    def holders(self, device_id: str) -> list[str]: ...


def replica_channel(replica_id: str) -> str:
    return f"replica:{replica_id}"


class Hub:
    def __init__(self, *, replica_id: str = "local", bus: Bus | None = None, directory: Directory | None = None):
        self.replica_id = replica_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._bus = bus
        self._directory = directory if bus is not None else None
        self._ops: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._failing_since = 0.0
        if self._directory is not None and bus is not None:
            bus.subscribe(replica_channel(replica_id), self._on_remote)
            bus.on_reconnect(self.resync)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._directory is not None and self._worker is None:
            self._worker = threading.Thread(target=self._run, name="mallfence-hub", daemon=True)
            self._worker.start()

    def subscribe(self, device_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue_: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        first = not self._queues.get(device_id)
        self._queues[device_id].add(queue_)
        if first and self._directory is not None:
            self._ops.put(("claim", device_id))
        return queue_

    def unsubscribe(self, device_id: str, queue_: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._queues.get(device_id)
        if queues is not None:
            queues.discard(queue_)
            if not queues:
                del self._queues[device_id]
                if self._directory is not None:
                    self._ops.put(("release", device_id))

    def connected(self, device_id: str) -> bool:
        """A socket of the device is open here or, with replicas, on any replica."""
        if self._queues.get(device_id):
            return True
        return bool(self._remote_holders(device_id))

    def publish(self, device_id: str, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        if self._loop is not None and device_id in self._queues:
            self._loop.call_soon_threadsafe(self._deliver, device_id, messages)
        if self._bus is None or self._directory is None:
            return
        for replica_id in self._remote_holders(device_id):
            self._bus.publish(replica_channel(replica_id), {"device": device_id, "messages": messages})

    def _deliver(self, device_id: str, messages: list[dict[str, Any]]) -> None:
        for queue_ in self._queues.get(device_id, ()):
            for message in messages:
                queue_.put_nowait(message)

    # -- replicas ---------------------------------------------------------------------------------
    def _remote_holders(self, device_id: str) -> list[str]:
        if self._directory is None:
            return []
        try:
            holders = self._directory.holders(device_id)
        except Exception as exc:  # Redis down: behave as if the device had no socket elsewhere
            self._failing(exc)
            return []
        return [r for r in holders if r != self.replica_id]

    def _on_remote(self, message: dict[str, Any]) -> None:
        """A push for a device whose socket another replica thinks is here (bus thread)."""
        device_id, messages = message.get("device"), message.get("messages")
        if not isinstance(device_id, str) or not isinstance(messages, list) or self._loop is None:
            return
        if device_id in self._queues:
            with contextlib.suppress(RuntimeError):  # loop closed: shutting down
                self._loop.call_soon_threadsafe(self._deliver, device_id, messages)

    def resync(self) -> None:
        """Announce every local socket again (after Redis lost its data, or the bus its messages)."""
        self._ops.put(("resync", ""))

    def close(self) -> None:
        """Stop the worker and withdraw this replica's sockets, so others stop routing here at once."""
        if self._worker is None:
            return
        self._ops.put(("stop", ""))
        self._worker.join(timeout=5)
        self._worker = None
        if self._directory is not None and self._queues:
            try:
                self._directory.release(self.replica_id, list(self._queues))
            except Exception as exc:  # they expire on their own
                self._failing(exc)

    def _run(self) -> None:
        assert self._directory is not None
        every = self._directory.ttl_s / 3  # two refreshes may fail before an entry expires
        next_refresh = time.monotonic() + every
        while True:
            try:
                op, device_id = self._ops.get(timeout=max(0.0, next_refresh - time.monotonic()))
            except queue.Empty:
                op, device_id = "resync", ""
            if op == "stop":
                return
            try:
                # Decide from the current sockets, not the op: a quick connect/disconnect pair ends right.
                if op == "resync":
                    next_refresh = time.monotonic() + every
                    if self._queues:
                        self._directory.claim(self.replica_id, list(self._queues))
                elif op == "claim" and device_id in self._queues:
                    self._directory.claim(self.replica_id, [device_id])
                elif op == "release" and device_id not in self._queues:
                    self._directory.release(self.replica_id, [device_id])
                if self._failing_since:
                    log.warning("hub: socket directory reachable again after %.1f s",
                                time.monotonic() - self._failing_since)
                    self._failing_since = 0.0
            except Exception as exc:  # retried by the next refresh; entries of released sockets expire
                self._failing(exc)

    def _failing(self, exc: Exception) -> None:
        if not self._failing_since:
            self._failing_since = time.monotonic()
            log.warning("hub: socket directory unavailable (%s: %s); local sockets still served",
                        type(exc).__name__, exc)
