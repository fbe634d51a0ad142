"""Device presence shared by every replica: states, locks and socket locations in Redis.

Only imported when ``MALLFENCE_REDIS_URL`` is set. Keys (``P`` = ``redis_prefix``, default ``mf:``):

``P dev:{device}``     the device's state as compact JSON ``{"t": last_ts, "z": {zone: [inside, since,
                       pending, dwell_fired]}}``; TTL ``redis_state_ttl_s``, refreshed on every put
``P lock:{device}``    per-device lock (``SET NX PX``, random token, released by a compare-and-delete script)
``P seen``             sorted set device -> Redis server time of the last put, for devices with open zones
``P zone:{zone}``      set of devices inside the zone now (kept by the put script; TTL as states)
``P touch:{device}``   ``SET NX EX``: when the device's last_seen_at was last written to the database
``P conn:{device}``    sorted set replica -> expiry time: replicas holding a websocket of the device

Redis errors surface as ``StateUnavailable`` (HTTP 503, retryable). Before the batch's events are
committed nothing has changed; a write that fails after the commit (Redis lost in that millisecond)
leaves the old state, so a retry of that batch repeats its events. Redis without persistence forgets
presence on restart: devices then enter their zones again. A single Redis (or a Sentinel primary) is
assumed; scripts build zone keys themselves, which Redis Cluster would refuse.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from mallfence.errors import DomainError
from mallfence.presence.machine import DeviceState, ZonePresence
from mallfence.spatial.beacons import RssiSmoother

log = logging.getLogger("mallfence.presence")


class StateUnavailable(DomainError):
    """Redis did not answer: the batch was not applied and may be sent again."""

    status_code = 503


class LockTimeout(StateUnavailable):
    """Another replica held the device's lock for longer than the wait limit."""


def connect(url: str, *, name: str = "mallfence") -> redis.Redis:
    """A thread-safe client with a connection pool; ingest calls it from many worker threads.

    Two quick retries hide a pooled connection dropped by a Redis restart; a Redis that is down fails a
    request within about a second instead of redis-py's default ten retries.
    """
    return redis.Redis.from_url(
        url, decode_responses=True, client_name=name, socket_connect_timeout=1.0, socket_timeout=2.0,
        health_check_interval=30, retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    )


# KEYS: lock, state, touch. ARGV: token, lock ttl ms. Taking the lock also reads the state and whether
# last_seen_at was written lately: one round trip for what an ingest needs before deciding.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('EXISTS', KEYS[3]), redis.call('GET', KEYS[2])}
end
return {0}
"""

# KEYS: state, seen, lock. ARGV: prefix, device, new state JSON, has zones (0/1), ttl s, lock token ('' when
# not holding it), inside zone ids... One round trip: the state, the zone sets and the silent-device index
# change together, and a put made under the lock releases it.
_PUT = """
local old = redis.call('GET', KEYS[1])
local inside = {}
for i = 7, #ARGV do inside[ARGV[i]] = true end
if old then
  for zone, p in pairs(cjson.decode(old)['z']) do
    if p[1] == 1 and not inside[zone] then redis.call('SREM', ARGV[1] .. 'zone:' .. zone, ARGV[2]) end
  end
end
for i = 7, #ARGV do
  local key = ARGV[1] .. 'zone:' .. ARGV[i]
  redis.call('SADD', key, ARGV[2])
  redis.call('EXPIRE', key, ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[5])
if ARGV[4] == '1' then
  local now = redis.call('TIME')
  redis.call('ZADD', KEYS[2], now[1] + now[2] / 1e6, ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
if ARGV[6] ~= '' and redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end
"""

# KEYS: state, seen, touch. ARGV: prefix, device.
_FORGET = """
local old = redis.call('GET', KEYS[1])
if old then
  for zone, p in pairs(cjson.decode(old)['z']) do
    if p[1] == 1 then redis.call('SREM', ARGV[1] .. 'zone:' .. zone, ARGV[2]) end
  end
end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
"""

# KEYS: seen. ARGV: seconds, prefix. Server time, so replica clocks never matter. A device whose state
# expired (no replica swept it in time) leaves the index here instead of coming back every sweep.
_SILENT = """
local now = redis.call('TIME')
local out = {}
for _, device in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',
                                   '(' .. (now[1] + now[2] / 1e6 - tonumber(ARGV[1])))) do
  if redis.call('EXISTS', ARGV[2] .. 'dev:' .. device) == 1 then out[#out + 1] = device
  else redis.call('ZREM', KEYS[1], device) end
end
return out
"""

# KEYS: lock. ARGV: token. Only the holder may release: an expired lock may belong to someone else now.
# (The same test ends _PUT.)
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def encode(state: DeviceState) -> str:
    zones = {str(z): [int(p.inside), p.since, p.pending, int(p.dwell_fired)] for z, p in state.zones.items()}
    data: dict[str, object] = {"t": state.last_ts, "z": zones}
    if state.floor_hint is not None:
        data["f"] = list(state.floor_hint)
    if state.radio is not None:
        data["r"] = state.radio.to_dict()
    if state.seen_at is not None:
        data["s"] = state.seen_at
    if state.last_xy is not None:
        data["l"] = list(state.last_xy)
    if state.truth is not None:
        data["g"] = list(state.truth)
    return json.dumps(data, separators=(",", ":"))


def decode(raw: str) -> DeviceState:
    data = json.loads(raw)
    zones = {int(z): ZonePresence(bool(p[0]), p[1], p[2], bool(p[3])) for z, p in data["z"].items()}
    hint = data.get("f")
    radio = RssiSmoother.from_dict(data["r"]) if data.get("r") else None
    last, truth = data.get("l"), data.get("g")
    return DeviceState(data["t"], zones, (int(hint[0]), float(hint[1])) if hint else None, radio, data.get("s"),
                       tuple(last) if last else None, tuple(truth) if truth else None)  # type: ignore[arg-type]


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StateUnavailable(f"presence store unavailable ({what}): {exc}; retry shortly") from exc


@dataclass(slots=True)
class _Held:
    """A lock this thread holds, with the device's state as read when taking it."""

    token: str
    state: DeviceState
    touched: bool  # the touch key existed: due_touch is False without asking
    dirty: bool = False  # put under the lock: written by the release, in the same round trip


class RedisStateStore:
    """The interface of ``InMemoryStateStore``, shared by every replica through Redis.

    Under ``locked`` no other replica can write the device, so the state read with the lock serves
    ``get`` and a ``put`` is written together with the release: an ingest costs two round trips
    (lock+read, write+unlock) instead of five, plus one a minute to claim the last-seen touch.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "mf:", ttl_s: int = 3 * 86400,
                 lock_wait_s: float = 5.0, lock_ttl_s: float = 30.0):
        self._r = client
        self._p = prefix
        self._ttl_s = int(ttl_s)
        self._lock_wait_s = lock_wait_s
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._put = client.register_script(_PUT)
        self._forget = client.register_script(_FORGET)
        self._silent = client.register_script(_SILENT)
        self._release = client.register_script(_RELEASE)
        self._local = threading.local()  # ingest runs in worker threads: locks are held per thread

    def _key(self, kind: str, device_id: str) -> str:
        return f"{self._p}{kind}:{device_id}"

    def _acquire_keys(self, device_id: str) -> list[str]:
        return [self._key("lock", device_id), self._key("dev", device_id), self._key("touch", device_id)]

    def _held(self) -> dict[str, _Held]:
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    @contextmanager
    def locked(self, device_id: str) -> Iterator[None]:
        """Exclusive across replicas, so one device's batches apply in order wherever they arrive."""
        key, token = self._key("lock", device_id), os.urandom(12).hex()
        deadline = time.monotonic() + self._lock_wait_s
        delay = 0.001
        with _unavailable("lock"):
            # Polling, not blocking: contention is rare (one device, two batches at once) and short.
            while not (got := self._acquire(keys=self._acquire_keys(device_id), args=[token, self._lock_ttl_ms]))[0]:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"device {device_id} is busy: another batch held it for more than "
                                      f"{self._lock_wait_s:g} s; retry")
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        held = self._held()
        state = decode(got[2]) if len(got) > 2 and got[2] is not None else DeviceState()
        held[device_id] = entry = _Held(token, state, touched=bool(got[1]))
        try:
            yield
        finally:
            del held[device_id]
            if entry.dirty:
                with _unavailable("write"):
                    self._write(device_id, entry.state, token)
            else:
                try:
                    self._release(keys=[key], args=[token])
                except RedisError as exc:  # nothing to write; the lock runs out on its own
                    log.warning("could not release the lock of device %s (expires in %d ms): %s",
                                device_id, self._lock_ttl_ms, exc)

    @contextmanager
    def locked_many(self, device_ids: Collection[str]) -> Iterator[None]:
        """``locked`` for several devices (a group of websocket messages): when all are free, one round trip
        takes every lock and reads the states, and one writes and releases them all. If any is busy, the
        ones taken are let go at once and the devices are locked one by one in sorted order: a replica never
        waits while holding locks taken out of that order, so two groups cannot wait on each other."""
        held = self._held()
        ids = sorted(d for d in set(device_ids) if d not in held)
        tokens = [os.urandom(12).hex() for _ in ids]
        with _unavailable("lock"):
            pipe = self._r.pipeline(transaction=False)
            for device_id, token in zip(ids, tokens, strict=True):
                self._acquire(keys=self._acquire_keys(device_id), args=[token, self._lock_ttl_ms], client=pipe)
            replies = pipe.execute()
        if not all(got[0] for got in replies):
            self._release_all([(d, t) for d, t, got in zip(ids, tokens, replies, strict=True) if got[0]])
            with contextlib.ExitStack() as stack:
                for device_id in ids:
                    stack.enter_context(self.locked(device_id))
                yield
            return
        for device_id, token, got in zip(ids, tokens, replies, strict=True):
            state = decode(got[2]) if len(got) > 2 and got[2] is not None else DeviceState()
            held[device_id] = _Held(token, state, touched=bool(got[1]))
        try:
            yield
        finally:
            entries = [(device_id, held.pop(device_id)) for device_id in ids]
            pipe = self._r.pipeline(transaction=False)
            for device_id, entry in entries:
                if entry.dirty:
                    self._put(**self._put_call(device_id, entry.state, entry.token), client=pipe)
                else:
                    self._release(keys=[self._key("lock", device_id)], args=[entry.token], client=pipe)
            try:
                pipe.execute()
            except RedisError as exc:
                if any(entry.dirty for _, entry in entries):
                    raise StateUnavailable(f"presence store unavailable (write): {exc}; retry shortly") from exc
                log.warning("could not release the locks of %d devices (they expire in %d ms): %s",
                            len(entries), self._lock_ttl_ms, exc)

    def _release_all(self, locks: list[tuple[str, str]]) -> None:
        try:
            pipe = self._r.pipeline(transaction=False)
            for device_id, token in locks:
                self._release(keys=[self._key("lock", device_id)], args=[token], client=pipe)
            pipe.execute()
        except RedisError as exc:  # they run out on their own
            log.warning("could not release %d locks (they expire in %d ms): %s", len(locks), self._lock_ttl_ms, exc)

    def get(self, device_id: str) -> DeviceState:
        """A copy of the device's state, safe to change before deciding to keep it."""
        entry = self._held().get(device_id)
        if entry is not None:
            return entry.state.clone()
        with _unavailable("read"):
            raw = self._r.get(self._key("dev", device_id))
        return decode(raw) if raw is not None else DeviceState()  # type: ignore[arg-type]

    def put(self, device_id: str, state: DeviceState) -> None:
        entry = self._held().get(device_id)
        if entry is not None:
            entry.state, entry.dirty = state.clone(), True
            return
        with _unavailable("write"):
            self._write(device_id, state, "")

    def _write(self, device_id: str, state: DeviceState, token: str) -> None:
        self._put(**self._put_call(device_id, state, token))

    def _put_call(self, device_id: str, state: DeviceState, token: str) -> dict[str, list]:
        inside = [str(z) for z, p in state.zones.items() if p.inside]
        return {"keys": [self._key("dev", device_id), f"{self._p}seen", self._key("lock", device_id)],
                "args": [self._p, device_id, encode(state), int(bool(state.zones)), self._ttl_s, token, *inside]}

    def due_touch(self, device_id: str, every_s: float) -> bool:
        """True at most once per ``every_s`` per device, across all replicas."""
        entry = self._held().get(device_id)
        if entry is not None and entry.touched:
            return False
        with _unavailable("touch"):
            return bool(self._r.set(self._key("touch", device_id), "1", nx=True, ex=max(1, math.ceil(every_s))))

    def silent_since(self, seconds: float) -> list[str]:
        with _unavailable("silent devices"):
            return list(self._silent(keys=[f"{self._p}seen"], args=[seconds, self._p]))  # type: ignore[arg-type]

    def devices_in_zone(self, zone_id: int) -> list[str]:
        with _unavailable("zone members"):
            return sorted(self._r.smembers(f"{self._p}zone:{zone_id}"))  # type: ignore[arg-type]

    def forget(self, device_id: str) -> None:
        entry = self._held().get(device_id)
        if entry is not None:
            entry.state, entry.dirty, entry.touched = DeviceState(), False, False
        with _unavailable("forget"):
            self._forget(keys=[self._key("dev", device_id), f"{self._p}seen", self._key("touch", device_id)],
                         args=[self._p, device_id])


class RedisSocketDirectory:
    """Which replicas hold a websocket of a device; an entry lives ``ttl_s`` unless refreshed.

    A sorted set per device (replica -> expiry) rather than one string: during a reconnect the app can
    briefly have sockets on two replicas, and a replica that died leaves an entry that simply runs out.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "mf:", ttl_s: float = 60.0):
        self._r = client
        self._p = prefix
        self.ttl_s = ttl_s

    def _key(self, device_id: str) -> str:
        return f"{self._p}conn:{device_id}"

    def claim(self, replica_id: str, device_ids: Collection[str]) -> None:
        for chunk in _chunks(list(device_ids)):
            now = time.time()
            pipe = self._r.pipeline(transaction=False)
            for device_id in chunk:
                key = self._key(device_id)
                pipe.zremrangebyscore(key, "-inf", now)  # entries of replicas that died
                pipe.zadd(key, {replica_id: now + self.ttl_s})
                pipe.expire(key, math.ceil(self.ttl_s))
            pipe.execute()

    def release(self, replica_id: str, device_ids: Collection[str]) -> None:
        for chunk in _chunks(list(device_ids)):
            pipe = self._r.pipeline(transaction=False)
            for device_id in chunk:
                pipe.zrem(self._key(device_id), replica_id)
            pipe.execute()

    def holders(self, device_id: str) -> list[str]:
        return list(self._r.zrangebyscore(self._key(device_id), time.time(), "+inf"))  # type: ignore[arg-type]


def _chunks(items: list[str], size: int = 1000) -> list[list[str]]:
    """Pipelines of bounded size: a replica may hold tens of thousands of sockets."""
    return [items[i:i + size] for i in range(0, len(items), size)]
