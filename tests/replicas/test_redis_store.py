"""RedisStateStore behaves like InMemoryStateStore, across store instances (replicas) too; the bus."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from mallfence.bus import LocalBus, RedisBus
from mallfence.presence.machine import DeviceState, ZonePresence
from mallfence.presence.redis_store import LockTimeout, RedisStateStore, StateUnavailable, connect
from mallfence.presence.store import InMemoryStateStore
from tests.replicas.cluster import ThrowawayRedis, drop_prefix, free_port


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    p = f"mftest:{uuid.uuid4().hex[:10]}:"
    yield p
    drop_prefix(redis_url, p)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = connect(redis_url)
    yield c
    c.close()


def _state(ts: float, **zones: tuple[bool, float | None, float | None, bool]) -> DeviceState:
    return DeviceState(ts, {int(z[1:]): ZonePresence(*p) for z, p in zones.items()})


def test_same_answers_as_the_in_memory_store(client: redis.Redis, prefix: str) -> None:
    stores = [InMemoryStateStore(), RedisStateStore(client, prefix=prefix)]
    steps = [
        ("d1", _state(1.0, z7=(True, 1.0, None, False), z8=(False, None, 1.0, False))),
        ("d2", _state(2.0, z7=(True, 2.0, None, True))),
        ("d1", _state(3.0, z8=(True, 1.0, 3.0, False))),  # left 7, entered 8
        ("d3", _state(4.0)),  # no zones: not a silent-device candidate
    ]
    for device, state in steps:
        for store in stores:
            with store.locked(device):
                store.put(device, state.clone())
    for store in stores:
        assert store.get("d1") == steps[2][1]
        assert store.get("nobody") == DeviceState()
        assert sorted(store.devices_in_zone(7)) == ["d2"]
        assert sorted(store.devices_in_zone(8)) == ["d1"]
        assert store.devices_in_zone(9) == []
    time.sleep(0.01)
    for store in stores:
        assert sorted(store.silent_since(0.0)) == ["d1", "d2"]
        assert store.silent_since(60.0) == []
        assert store.due_touch("d1", 60) and not store.due_touch("d1", 60)
        store.forget("d1")
        assert store.get("d1") == DeviceState() and store.devices_in_zone(8) == []
        assert sorted(store.silent_since(0.0)) == ["d2"]
        assert store.due_touch("d1", 60), "forget also forgets the touch"


def test_a_state_changed_in_place_after_get_is_not_stored(client: redis.Redis, prefix: str) -> None:
    store = RedisStateStore(client, prefix=prefix)
    store.put("d", _state(1.0, z1=(True, 1.0, None, False)))
    store.get("d").zones.clear()
    assert store.devices_in_zone(1) == ["d"] and store.get("d").zones


def test_a_put_under_the_lock_is_written_with_the_release(client: redis.Redis, prefix: str) -> None:
    here, there = RedisStateStore(client, prefix=prefix), RedisStateStore(client, prefix=prefix)
    with here.locked("d"):
        here.put("d", _state(5.0, z3=(True, 5.0, None, False)))
        assert here.get("d").last_ts == 5.0
        assert there.get("d") == DeviceState() and client.get(f"{prefix}lock:d")
    assert there.get("d").last_ts == 5.0 and there.devices_in_zone(3) == ["d"]
    assert client.get(f"{prefix}lock:d") is None
    with here.locked("d"):
        here.forget("d")
        assert here.get("d") == DeviceState()
    assert there.get("d") == DeviceState() and there.devices_in_zone(3) == []


def test_due_touch_under_the_lock_asks_redis_only_when_it_may_be_due(client: redis.Redis, prefix: str) -> None:
    store = RedisStateStore(client, prefix=prefix)
    with store.locked("d"):
        assert store.due_touch("d", 60)
        assert not store.due_touch("d", 60)
    with store.locked("d"):  # knew from taking the lock that the touch is recent
        assert not store.due_touch("d", 60)
    client.delete(f"{prefix}touch:d")  # a minute later
    with store.locked("d"):
        assert store.due_touch("d", 60)


def test_devices_whose_state_expired_leave_the_silent_index(client: redis.Redis, prefix: str) -> None:
    store = RedisStateStore(client, prefix=prefix)
    store.put("d", _state(1.0, z1=(True, 1.0, None, False)))
    client.delete(f"{prefix}dev:d")  # as if its TTL ran out
    assert store.silent_since(0.0) == [] and client.zcard(f"{prefix}seen") == 0


def test_state_keys_expire_and_are_compact(client: redis.Redis, prefix: str) -> None:
    store = RedisStateStore(client, prefix=prefix, ttl_s=3600)
    store.put("d", _state(1700000000.25, z12=(True, 1700000000.0, None, True)))
    assert 3590 < client.ttl(f"{prefix}dev:d") <= 3600
    assert 3590 < client.ttl(f"{prefix}zone:12") <= 3600
    assert client.get(f"{prefix}dev:d") == '{"t":1700000000.25,"z":{"12":[1,1700000000.0,null,1]}}'


def test_the_lock_serialises_one_device_across_replicas(client: redis.Redis, prefix: str, redis_url: str) -> None:
    other = connect(redis_url)
    replicas = [RedisStateStore(client, prefix=prefix), RedisStateStore(other, prefix=prefix)]

    def bump(store: RedisStateStore) -> None:
        for _ in range(40):
            with store.locked("d"):
                state = store.get("d")
                time.sleep(0.0005)  # widen the read-modify-write window a lost update would need
                state.last_ts = (state.last_ts or 0) + 1
                store.put("d", state)

    threads = [threading.Thread(target=bump, args=(s,)) for s in replicas for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert replicas[0].get("d").last_ts == 160


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_locked_many_serialises_with_locked_and_writes_on_release(client: redis.Redis, prefix: str,
                                                                  redis_url: str, kind: str) -> None:
    """A group (several devices under one lock call) and single-device batches, on two replicas at once:
    no update is lost, every lock is released, and puts made under the group's lock are stored."""
    other = connect(redis_url)
    shared = InMemoryStateStore()
    replicas = ([shared, shared] if kind == "memory"
                else [RedisStateStore(client, prefix=prefix), RedisStateStore(other, prefix=prefix)])
    devices = [f"d{i}" for i in range(6)]

    def group(store, rounds: int = 30) -> None:  # type: ignore[no-untyped-def]
        for _ in range(rounds):
            with store.locked_many(devices + devices[:2]):  # a device twice in one group is one lock
                states = {d: store.get(d) for d in devices}
                time.sleep(0.0005)
                for d, state in states.items():
                    state.last_ts = (state.last_ts or 0) + 1
                    store.put(d, state)

    def single(store, rounds: int = 30) -> None:  # type: ignore[no-untyped-def]
        for _ in range(rounds):
            for d in ("d0", "d5"):
                with store.locked(d):
                    state = store.get(d)
                    state.last_ts = (state.last_ts or 0) + 1
                    store.put(d, state)

    threads = [threading.Thread(target=group, args=(replicas[0],)), threading.Thread(target=group, args=(replicas[1],)),
               threading.Thread(target=single, args=(replicas[1],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    other.close()
    assert [replicas[0].get(d).last_ts for d in devices] == [90, 60, 60, 60, 60, 90]
    if kind == "redis":
        assert not list(client.scan_iter(match=f"{prefix}lock:*"))


def test_a_held_lock_times_out_with_a_retryable_error(client: redis.Redis, prefix: str) -> None:
    holder = RedisStateStore(client, prefix=prefix, lock_ttl_s=0.5)
    waiter = RedisStateStore(client, prefix=prefix, lock_wait_s=0.1)
    lock = holder.locked("d")
    lock.__enter__()
    with pytest.raises(LockTimeout) as info, waiter.locked("d"):
        pass
    assert info.value.status_code == 503
    time.sleep(0.6)  # the holder "died": its lock runs out
    with waiter.locked("d"):
        lock.__exit__(None, None, None)  # a late release must not free the new holder's lock
        assert client.get(f"{prefix}lock:d") is not None
    assert client.get(f"{prefix}lock:d") is None


def test_redis_down_is_a_503_not_a_crash() -> None:
    store = RedisStateStore(connect(f"redis://127.0.0.1:{free_port()}/0"), prefix="mftest:down:")
    with pytest.raises(StateUnavailable) as info:
        store.get("d")
    assert info.value.status_code == 503
    with pytest.raises(StateUnavailable), store.locked("d"):
        pass


def test_local_bus_calls_handlers_in_process() -> None:
    bus, seen = LocalBus(), []
    bus.subscribe("venues", seen.append)
    bus.subscribe("venues", lambda m: 1 / 0)  # a failing handler does not stop the publisher
    assert bus.publish("venues", {"venue": 1}) and seen == [{"venue": 1}]


def _wait(check: threading.Event | list[object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not (check.is_set() if isinstance(check, threading.Event) else check):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_redis_bus_reconnects_and_says_so(throwaway_redis: ThrowawayRedis, caplog: pytest.LogCaptureFixture) -> None:
    listener, sender = RedisBus(throwaway_redis.url, prefix="t:"), RedisBus(throwaway_redis.url, prefix="t:")
    stranger = RedisBus(throwaway_redis.url, prefix="other:")
    got: list[object] = []
    reconnected = threading.Event()
    listener.subscribe("venues", got.append)
    listener.on_reconnect(reconnected.set)
    listener.start()
    try:
        _wait(listener.connected)
        stranger.publish("venues", {"venue": 0})  # another deployment's channel
        sender.publish("venues", {"venue": 1})
        _wait(got)
        assert got == [{"venue": 1}]
        throwaway_redis.stop()
        assert not sender.publish("venues", {"venue": 2}), "publishing while down reports, never raises"
        throwaway_redis.start()
        _wait(reconnected, 10)
        got.clear()
        sender.publish("venues", {"venue": 3})
        _wait(got)
        assert got == [{"venue": 3}]
    finally:
        for bus in (listener, sender, stranger):
            bus.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "mallfence.bus"]
    assert any("lost Redis" in m for m in messages) and any("Redis is back" in m for m in messages), messages


def test_floor_hint_and_beacon_smoother_travel_between_replicas(client: redis.Redis, prefix: str) -> None:
    """A device's beacon scans may reach any replica: the RSSI window and the floor go with its state."""
    from mallfence.spatial.beacons import RssiSmoother

    radio = RssiSmoother()
    for t, rssi in ((1.0, -70.0), (2.0, -72.5), (2.5, -68.0)):
        radio.add("ibeacon:7b1e4f0c-5a2d-4c8e-9f3b-2d6a8e1c0b54:1:1", rssi, t)
    state = _state(2.5, z7=(True, 1.0, None, False))
    state.floor_hint, state.radio = (1, 62.5), radio
    a, b = RedisStateStore(client, prefix=prefix), RedisStateStore(client, prefix=prefix)
    with a.locked("d1"):
        a.put("d1", state.clone())
    with b.locked("d1"):
        got = b.get("d1")
    assert got.floor_hint == (1, 62.5) and got.zones == state.zones and got.last_ts == 2.5
    assert got.radio.to_dict() == radio.to_dict()
    assert got.radio.estimates(3.0) == radio.estimates(3.0)
