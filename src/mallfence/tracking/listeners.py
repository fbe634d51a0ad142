"""What reacts to stored events inside the transaction that stores them: webhooks, engagement, commerce.

A listener gets the events just flushed (their ids known) and the session of their transaction, so
whatever it writes (webhook deliveries, push decisions and notifications, order arrivals) commits with
the events or not at all: a refused batch leaves no decision behind, a committed one never loses its
push. Work that must wait for the commit (waking a dispatcher, alerting a staff websocket) goes to
``after_commit``; it runs once the transaction has committed, and never if it did not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from mallfence.devices.models import Device
    from mallfence.runtime import Runtime
    from mallfence.tracking.schemas import EventOut
    from mallfence.venues.snapshot import VenueSnapshot

log = logging.getLogger("mallfence.tracking")


@dataclass(slots=True)
class EventBatch:
    session: Session
    rt: Runtime
    device: Device
    snapshot: VenueSnapshot
    events: list[EventOut]
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # event id -> (lon, lat, floor) of the fix behind it, for this batch's decisions only: the position is
    # stored with the event only when the shopper consented to location tracking, but a push decided now
    # ("in stock 60 m from you") may use it either way.
    positions: dict[int, tuple[float, float, int | None]] = field(default_factory=dict)


Listener = Callable[[EventBatch], None]


def run_after_commit(batch: EventBatch) -> None:
    """Run the batch's post-commit work; one failing step must not skip the others."""
    for step in batch.after_commit:
        try:
            step()
        except Exception:  # the events are committed: report, keep going
            log.exception("after-commit step %r failed", step)
