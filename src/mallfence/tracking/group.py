"""Group ingest: fixes from many devices applied by one worker thread, their events in one transaction.

Each websocket message (and each ``POST …/positions``) used to be a trip to the thread pool: dozens of
threads each applying one batch, taking turns on the GIL around every shapely and SQLite call, and one
transaction per batch with events. At websocket saturation that convoy, not the work, set the pace
(bench/ws_ingest.py: ~2,000 messages/s with the GIL idle 40 % of the time, against ~125 µs of work a fix
in one thread). Here the event loop queues each batch, and a single thread takes everything queued,
matches it in one index query per venue, applies it device by device under the devices' locks, stores
every batch's events in one transaction, and answers each caller.

Each batch keeps the guarantees of ``service.ingest``: its checks refuse it alone, its events are stored
or not with it, its device's state changes only after the commit. If the shared transaction fails, the
group is retried one batch at a time, so one bad batch cannot sink its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from mallfence import metrics
from mallfence.devices.models import Device
from mallfence.errors import DomainError
from mallfence.presence.machine import DeviceState
from mallfence.runtime import Runtime
from mallfence.tracking import service
from mallfence.tracking.listeners import EventBatch
from mallfence.tracking.schemas import EventOut, FixIn, IngestOut

log = logging.getLogger("mallfence.ingest")

MAX_GROUP_FIXES = 2_000  # a group stops taking messages past this many fixes: bounds one pass's latency


def ingest_many(rt: Runtime, batches: Sequence[tuple[Device, Sequence[FixIn]]]) -> list[IngestOut | Exception]:
    """``service.ingest`` for each (device, fixes), in one transaction; a refused batch gets its error."""
    results: list[IngestOut | Exception | None] = [None] * len(batches)
    checked: list[tuple[int, service.Checked]] = []
    for k, (device, fixes) in enumerate(batches):
        try:
            checked.append((k, service.check(rt, device, fixes)))
        except DomainError as exc:
            results[k] = exc
    if checked:
        try:
            done = _apply_group(rt, [c for _, c in checked])
        except Exception as exc:  # the shared transaction failed: nothing kept; each batch on its own
            log.warning("group ingest of %d batches failed (%s: %s); applying them one by one",
                        len(checked), type(exc).__name__, exc)
            done = [_alone(rt, c) for _, c in checked]
        for (k, _), result in zip(checked, done, strict=True):
            results[k] = result
    return results  # type: ignore[return-value]


def _alone(rt: Runtime, c: service.Checked) -> IngestOut | Exception:
    try:
        return service.ingest(rt, device=c.device, fixes=c.fixes, source=c.source)
    except DomainError as exc:
        return exc
    except Exception as exc:  # this batch alone fails (a listener's bug, say): its socket hears, not the group
        log.exception("ingest of a batch from device %s failed", c.device.id)
        return exc


def _apply_group(rt: Runtime, checked: list[service.Checked]) -> list[IngestOut | Exception]:
    """Raises only if nothing was committed (the caller then applies each batch alone)."""
    ids = sorted({c.device.id for c in checked})
    committed = False
    try:
        with rt.states.locked_many(ids):
            states = {device_id: rt.states.get(device_id) for device_id in ids}
            found = _evidence(checked, states)
            applied = [service.apply(rt, c, states[c.device.id], found[k])  # same device: in order
                       for k, c in enumerate(checked)]
            stored = service.store_many(rt, [service.Stored(c.device, c.snapshot, produced)
                                             for c, (produced, _) in zip(checked, applied, strict=True)])
            committed = True
            for device_id, state in states.items():
                rt.states.put(device_id, state)
    except Exception as exc:
        if not committed:
            raise
        # The events are stored but the states could not be kept (Redis lost as the locks were let go): as
        # for a single batch, every caller hears it (503), and a retry repeats those events.
        return [exc] * len(checked)
    return [_settle_one(rt, c, stale, out, batch)
            for c, (_, stale), (out, batch) in zip(checked, applied, stored, strict=True)]


def _settle_one(rt: Runtime, c: service.Checked, stale: list[int], out: list[EventOut], batch: EventBatch | None
                ) -> IngestOut | Exception:
    try:
        return service.settle(rt, c, stale, out, batch)
    except Exception as exc:  # committed: never applied again; this caller alone hears of it
        log.exception("after-commit work of a batch from device %s failed", c.device.id)
        return exc


def _evidence(checked: list[service.Checked], states: dict[str, DeviceState]) -> list[service.Evidence]:
    """Every batch's zone evidence, one index query per venue in the group."""
    by_venue: dict[int, list[int]] = {}
    for k, c in enumerate(checked):
        by_venue.setdefault(id(c.snapshot), []).append(k)  # a snapshot rebuilt meanwhile is another index
    found: list[service.Evidence | None] = [None] * len(checked)
    for ks in by_venue.values():
        snapshot = checked[ks[0]].snapshot
        for k, ev in zip(ks, service.evidence_of(snapshot, [(states[checked[k].device.id], checked[k].ordered())
                                                            for k in ks]), strict=True):
            found[k] = ev
    return found  # type: ignore[return-value]


@dataclass(slots=True)
class _Job:
    device: Device
    fixes: Sequence[FixIn]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestOut]


class GroupIngest:
    """The worker: ``await submit(device, fixes)`` from the event loop, answered when its group commits."""

    def __init__(self, rt: Runtime, *, max_fixes: int = MAX_GROUP_FIXES):
        self._rt = rt
        self._max_fixes = max_fixes
        self._jobs: list[_Job] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mallfence-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    async def submit(self, device: Device, fixes: Sequence[FixIn]) -> IngestOut:
        loop = asyncio.get_running_loop()
        job = _Job(device, fixes, loop, loop.create_future())
        with self._ready:
            if self._stopping:
                raise RuntimeError("ingest is shutting down")
            self._jobs.append(job)
            self._ready.notify()
        return await job.future

    def _take(self) -> list[_Job] | None:
        with self._ready:
            while not self._jobs and not self._stopping:
                self._ready.wait()
            if not self._jobs:
                return None
            count, n = 0, 0
            for job in self._jobs:
                if n and count + len(job.fixes) > self._max_fixes:
                    break
                count += len(job.fixes)
                n += 1
            taken, self._jobs = self._jobs[:n], self._jobs[n:]
            return taken

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            metrics.GROUP_MESSAGES.observe(len(jobs))
            try:
                results: list[IngestOut | BaseException] = list(
                    ingest_many(self._rt, [(j.device, j.fixes) for j in jobs]))
            except Exception as exc:  # a bug, not bad input: each socket gets an error, the worker lives on
                log.exception("group ingest failed")
                results = [exc] * len(jobs)
            for job, result in zip(jobs, results, strict=True):
                with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                    job.loop.call_soon_threadsafe(_settle, job.future, result)


def _settle(future: asyncio.Future[IngestOut], result: IngestOut | BaseException) -> None:
    if future.done():  # the socket closed while its message waited
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
