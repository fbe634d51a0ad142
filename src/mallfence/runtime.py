"""The live parts of a running mallfence, built once by the app's lifespan and shared."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mallfence.config import Settings
from mallfence.presence.store import InMemoryStateStore
from mallfence.tracking.hub import Hub
from mallfence.venues.snapshot import SnapshotRegistry


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    snapshots: SnapshotRegistry
    states: InMemoryStateStore
    hub: Hub
