"""Where device presence states live between fixes: in process (one replica)."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager

from mallfence.presence.machine import DeviceState

_STRIPES = 256


class InMemoryStateStore:
    """Device states in a dict, with striped locks so one device's fixes are applied in order."""

    def __init__(self) -> None:
        self._states: dict[str, DeviceState] = {}
        self._seen: dict[str, float] = {}  # server monotonic time of the last accepted fix
        self._touched: dict[str, float] = {}  # when last_seen_at was last written for the device
        # Reentrant: a thread holding a group's stripes (locked_many) may lock one of those devices again.
        self._locks = [threading.RLock() for _ in range(_STRIPES)]

    @contextmanager
    def locked(self, device_id: str) -> Iterator[None]:
        with self._locks[hash(device_id) % _STRIPES]:
            yield

    @contextmanager
    def locked_many(self, device_ids: Collection[str]) -> Iterator[None]:
        """``locked`` for several devices; one order for all callers, so two never wait on each other."""
        with ExitStack() as stack:
            for stripe in sorted({hash(d) % _STRIPES for d in device_ids}):
                stack.enter_context(self._locks[stripe])
            yield

    def get(self, device_id: str) -> DeviceState:
        """A copy of the device's state, safe to change before deciding to keep it."""
        state = self._states.get(device_id)
        return state.clone() if state is not None else DeviceState()

    def put(self, device_id: str, state: DeviceState) -> None:
        self._states[device_id] = state
        self._seen[device_id] = time.monotonic()

    def due_touch(self, device_id: str, every_s: float) -> bool:
        """True at most once per ``every_s`` per device: when to persist its last-seen time."""
        now = time.monotonic()
        if now - self._touched.get(device_id, -every_s) < every_s:
            return False
        self._touched[device_id] = now
        return True

    def silent_since(self, seconds: float) -> list[str]:
        """Devices with open visits that sent nothing for ``seconds``."""
        cutoff = time.monotonic() - seconds
        return [d for d, t in list(self._seen.items()) if t < cutoff and self._states[d].zones]

    def devices_in_zone(self, zone_id: int) -> list[str]:
        """Devices whose presence says they are inside ``zone_id`` now."""
        return [d for d, st in list(self._states.items()) if (p := st.zones.get(zone_id)) is not None and p.inside]

    def forget(self, device_id: str) -> None:
        self._states.pop(device_id, None)
        self._seen.pop(device_id, None)
        self._touched.pop(device_id, None)
