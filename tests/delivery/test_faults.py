"""Faults that must lose nothing: a dispatcher killed mid-batch, FCM down for a while."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import func, select

from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.delivery import service as delivery_service
from mallfence.delivery.dispatcher import Dispatcher, DispatchPolicy
from mallfence.delivery.fcm import FirebaseSender
from mallfence.delivery.fcm_local import LocalFcm
from mallfence.delivery.models import Notification, PushToken
from mallfence.venues.models import Venue
from tests.factories import add_devices


def _seed(url: str, count: int) -> list[int]:
    """A venue, ``count`` devices with one FCM token each, one pending notification per device."""
    engine = make_engine(url)
    ids = []
    with transaction(make_session_factory(engine)) as s:
        venue = Venue(slug="mall", name="Mall", timezone="UTC", anchor_lon=0.0, anchor_lat=0.0)
        s.add(venue)
        s.flush()
        add_devices(s, venue.id, [f"dev-{i:05d}" for i in range(count)])
        s.flush()
        s.add_all(PushToken(device_id=f"dev-{i:05d}", token=f"token-{i:05d}", token_hash=f"h{i}", platform="android")
                  for i in range(count))
        s.flush()
        for i in range(count):
            note = delivery_service.enqueue(s, venue_id=venue.id, device_id=f"dev-{i:05d}", dedupe_key=f"k{i}",
                                            title="Sale", body="20 % off", category="operator", ttl_s=3600)
            ids.append(note.id)
    engine.dispose()
    return ids


def _statuses(url: str) -> Counter[str]:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.execute(select(Notification.status, func.count()).group_by(Notification.status)).all()
    engine.dispose()
    return Counter({status: n for status, n in rows})


def _dispatch_process(url: str, fcm: LocalFcm, batch: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MALLFENCE_FCM_CREDENTIALS_FILE": fcm.credentials_file, "MALLFENCE_FCM_BASE_URL": fcm.url,
           "MALLFENCE_DISPATCH_POLL_S": "0.05"}
    return subprocess.Popen([sys.executable, "-m", "mallfence.cli", "--database-url", url, "dispatch",
                             "--batch", str(batch), "--lease-s", "1"], env=env, stdout=subprocess.DEVNULL)


def test_dispatcher_killed_mid_batch_loses_nothing(database_url: str) -> None:
    total, batch = 1200, 50
    ids = _seed(database_url, total)
    with LocalFcm() as fcm:
        first = _dispatch_process(database_url, fcm, batch)
        deadline = time.monotonic() + 60
        while len(fcm.received) < 150 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = len(fcm.received)
        assert 0 < at_kill < total, "the kill must land while the outbox is half sent"
        second = _dispatch_process(database_url, fcm, batch)
        try:
            deadline = time.monotonic() + 90
            while _statuses(database_url).get("sent", 0) < total and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
        received = Counter(int(m.data["notification_id"]) for m in fcm.received)
    assert _statuses(database_url) == Counter({"sent": total})
    assert set(received) == set(ids), "every notification reached FCM"
    repeats = sum(n - 1 for n in received.values())
    # At least once: only the batch in flight at the kill may go out twice (the app drops repeats by id).
    assert repeats <= batch, f"{repeats} repeats after killing at {at_kill}/{total}"


def test_fcm_down_for_a_while_then_everything_is_sent_once(database_url: str) -> None:
    ids = _seed(database_url, 40)
    engine = make_engine(database_url)
    with LocalFcm() as fcm:
        fcm.fail("UNAVAILABLE", for_s=1.5)
        sender = FirebaseSender(fcm.credentials_file, base_url=fcm.url, status_retries=0)
        dispatcher = Dispatcher(make_session_factory(engine), is_connected=lambda _d: False,
                                push_ws=lambda _d, _m: None, sender=sender,
                                policy=DispatchPolicy(backoff_base_s=0.2, backoff_cap_s=1.0, max_attempts=20))
        try:
            deadline = time.monotonic() + 30
            while _statuses(database_url).get("sent", 0) < len(ids) and time.monotonic() < deadline:
                dispatcher.run_once()
                time.sleep(0.05)
        finally:
            sender.close()
        received = Counter(int(m.data["notification_id"]) for m in fcm.received)
        with make_session_factory(engine)() as s:
            attempts = s.scalars(select(Notification.attempts)).all()
    engine.dispose()
    assert _statuses(database_url) == Counter({"sent": len(ids)})
    assert received == Counter({i: 1 for i in ids}), "503s are not deliveries: each was accepted exactly once"
    assert max(attempts) >= 2, "the outage was ridden out by retrying"


