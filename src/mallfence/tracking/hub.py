"""Live channel to open apps: events for a device go to each of its open websockets.

Ingest runs in worker threads; websockets live on the event loop. ``publish`` is thread-safe and
never blocks the caller: it hands messages to the loop, which queues them per connection.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any


class Hub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, device_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[device_id].add(queue)
        return queue

    def unsubscribe(self, device_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._queues.get(device_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[device_id]

    def connected(self, device_id: str) -> bool:
        return bool(self._queues.get(device_id))

    def publish(self, device_id: str, messages: list[dict[str, Any]]) -> None:
        if not messages or self._loop is None or device_id not in self._queues:
            return
        self._loop.call_soon_threadsafe(self._deliver, device_id, messages)

    def _deliver(self, device_id: str, messages: list[dict[str, Any]]) -> None:
        for queue in self._queues.get(device_id, ()):
            for message in messages:
                queue.put_nowait(message)
