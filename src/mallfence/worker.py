"""A background thread that works in passes: back to back while busy, else after a poll interval or a wake."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("mallfence")


class PollingWorker:
    """Subclasses implement ``tick`` (one pass; how much it did). A failing pass is logged and retried."""

    def __init__(self, name: str, poll_s: float):
        self.name = name
        self._poll_s = poll_s
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        raise NotImplementedError

    def wake(self) -> None:
        """Work was committed: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.tick()
            except Exception:  # a bad pass must not end the work; leases make the retry safe
                log.exception("%s: pass failed", self.name)
                busy = 0
            if not busy:
                self._wake.wait(self._poll_s)
                self._wake.clear()
