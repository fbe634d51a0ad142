"""The dispatcher sends FCM outside its database transactions: what that must and must not change."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mallfence import migrate
from mallfence.db import make_engine, make_session_factory, transaction
from mallfence.delivery import service
from mallfence.delivery.dispatcher import Dispatcher
from mallfence.delivery.fcm import InMemorySender, PushMessage, PushResult
from mallfence.delivery.models import DeliveryAttempt, Notification, PushToken
from mallfence.venues.models import Venue
from tests.factories import add_devices


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _outbox(sessions: sessionmaker[Session], devices: int) -> list[int]:
    """One device with one token and one pending notification each."""
    with transaction(sessions) as s:
        venue = Venue(slug="mall", name="Mall", timezone="UTC", anchor_lon=0.0, anchor_lat=0.0)
        s.add(venue)
        s.flush()
        add_devices(s, venue.id, [f"d{i}" for i in range(devices)])
        s.add_all(PushToken(device_id=f"d{i}", token=f"t{i}", token_hash=f"h{i}", platform="android")
                  for i in range(devices))
        notes = [service.enqueue(s, venue_id=venue.id, device_id=f"d{i}", dedupe_key=f"k{i}", title="Sale",
                                 body="20 % off", category="operator", ttl_s=3600) for i in range(devices)]
        s.flush()
        return [n.id for n in notes if n is not None]


class WhileSending(InMemorySender):
    """An FCM that, while it answers, lets other writers of the database do something."""

    def __init__(self, during: object) -> None:
        super().__init__()
        self.during = during

    def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        self.during()  # type: ignore[operator]
        return super().send(messages)


def test_an_ack_arriving_while_fcm_answers_is_not_overwritten(sessions: sessionmaker[Session]) -> None:
    """The app acked (on a socket it opened meanwhile) before FCM answered: the notification stays delivered.

    Writing in another session also proves the dispatcher holds no write transaction while FCM answers
    (on SQLite the ack would wait for it, here: forever, as both run in this thread).
    """
    first, second = _outbox(sessions, 2)

    def ack() -> None:
        with transaction(sessions) as s:
            assert service.acknowledge(s, device_id="d0", ids=[first]) == 1

    dispatcher = Dispatcher(sessions, is_connected=lambda _d: False, push_ws=lambda *_: None,
                            sender=WhileSending(ack))
    assert dispatcher.run_once() == 2
    with sessions() as s:
        status = dict(s.execute(select(Notification.id, Notification.status)).all())
        leased = s.scalars(select(Notification.id).where(Notification.lease_owner.is_not(None))).all()
        history = s.execute(select(DeliveryAttempt.notification_id, DeliveryAttempt.channel,
                                   DeliveryAttempt.outcome).order_by(DeliveryAttempt.id)).all()
    assert status == {first: "delivered", second: "sent"}
    assert leased == []
    # both went out through FCM, and the history says so; the ack is in it too
    assert sorted(history) == sorted([(first, "ws", "acked"), (first, "fcm", "sent"), (second, "fcm", "sent")])


def test_a_lease_lost_during_the_send_leaves_the_row_to_its_new_owner(sessions: sessionmaker[Session]) -> None:
    """FCM took longer than the lease and another dispatcher claimed the row: we write nothing over its claim."""
    [note_id] = _outbox(sessions, 1)

    def take_over() -> None:
        with transaction(sessions) as s:
            s.get(Notification, note_id).lease_owner = "someone-else"  # type: ignore[union-attr]

    sender = WhileSending(take_over)
    dispatcher = Dispatcher(sessions, is_connected=lambda _d: False, push_ws=lambda *_: None, sender=sender)
    assert dispatcher.run_once() == 1
    with sessions() as s:
        note = s.get(Notification, note_id)
        attempts = s.scalars(select(DeliveryAttempt.outcome)).all()
    assert note is not None and (note.status, note.attempts, note.lease_owner) == ("pending", 0, "someone-else")
    assert attempts == [] and len(sender.messages) == 1
