"""The live parts of a running mallfence, built once by the app's lifespan and shared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mallfence.config import Settings
from mallfence.presence.store import InMemoryStateStore
from mallfence.tracking.hub import Hub
from mallfence.venues.snapshot import SnapshotRegistry

if TYPE_CHECKING:
    from mallfence.delivery.dispatcher import Dispatcher


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    snapshots: SnapshotRegistry
    states: InMemoryStateStore
    hub: Hub
    dispatcher: Dispatcher | None = field(default=None)

    def wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
