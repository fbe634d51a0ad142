"""What tracking needs of a venue, built once per zone change and swapped in atomically.

A snapshot is immutable: the zone index, the presence settings and the display facts of every active
zone, and the beacon map. A request takes the current snapshot once and uses it to the end, so an operator editing
zones never blocks or half-changes a batch being matched.

With replicas, a replica that rebuilt a venue after a committed change announces it on the bus
(``venues`` channel, ``{"venue": id, "origin": replica}``) and every other replica rebuilds that venue
on a background thread; after a bus outage (notices lost) each replica reloads every venue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zoneinfo
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mallfence.bus import Bus
from mallfence.engagement import service as engagement
from mallfence.engagement.matching import CampaignIndex
from mallfence.engagement.rules import Policy
from mallfence.presence.defaults import settings_for
from mallfence.presence.machine import PresenceSettings
from mallfence.spatial.beacons import BeaconMap
from mallfence.spatial.index import VenueIndex, ZoneShape
from mallfence.venues import beacon_service
from mallfence.venues.models import Venue, Zone

log = logging.getLogger("mallfence.venues")

VENUES_CHANNEL = "venues"


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    id: int
    external_id: str | None
    name: str
    kind: str
    level: int | None
    store_id: int | None = None  # the store occupying the zone

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "external_id": self.external_id, "name": self.name, "kind": self.kind,
                "level": self.level}


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    venue_id: int
    slug: str
    index: VenueIndex
    settings: dict[int, PresenceSettings]
    zones: dict[int, ZoneInfo]
    levels: frozenset[int]
    beacons: BeaconMap = field(default_factory=lambda: BeaconMap(()))
    path_loss_exponent: float = 2.5
    campaigns: CampaignIndex = field(default_factory=CampaignIndex)
    policy: Policy = field(default_factory=lambda: Policy(tz=zoneinfo.ZoneInfo("UTC")))
    timezone: str = "UTC"


def build_snapshot(session: Session, *, venue: Venue) -> VenueSnapshot:
    """Read the venue's active zones and beacons and build its index."""
    zones = list(session.scalars(select(Zone).where(Zone.venue_id == venue.id, Zone.active.is_(True))).unique())
    shapes, settings, infos = [], {}, {}
    for z in zones:
        ordinal = z.level.ordinal if z.level is not None else None
        s = settings_for(z.kind, z.presence)
        settings[z.id] = s
        infos[z.id] = ZoneInfo(z.id, z.external_id, z.name, z.kind, ordinal, z.store.id if z.store else None)
        shapes.append(ZoneShape(z.id, ordinal, z.area, s.enter_margin_m, s.exit_margin_m))
    return VenueSnapshot(
        venue_id=venue.id, slug=venue.slug, index=VenueIndex(venue.anchor_lon, venue.anchor_lat, shapes),
        settings=settings, zones=infos, levels=frozenset(lv.ordinal for lv in venue.levels),
        beacons=beacon_service.beacon_map(session, venue=venue), path_loss_exponent=venue.path_loss_exponent,
        campaigns=engagement.build_index(session, venue=venue, zones=zones),
        policy=engagement.policy_of(venue.timezone, venue.push_policy), timezone=venue.timezone,
    )


class SnapshotRegistry:
    """The current snapshot of every venue. Readers take a reference; rebuilds replace it."""

    def __init__(self, sessions: sessionmaker[Session], *, bus: Bus | None = None, replica_id: str = "local"):
        self._sessions = sessions
        self._by_venue: dict[int, VenueSnapshot] = {}
        self._rebuild_lock = threading.Lock()
        self._bus = bus
        self._replica_id = replica_id
        # Notices arrive on the bus thread, which also carries websocket pushes: rebuild elsewhere.
        self._background: ThreadPoolExecutor | None = None
        if bus is not None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mallfence-snapshots")
            bus.subscribe(VENUES_CHANNEL, self._on_notice)
            bus.on_reconnect(self._on_reconnect)

    def get(self, venue_id: int) -> VenueSnapshot | None:
        return self._by_venue.get(venue_id)

    def rebuild(self, venue_id: int) -> None:
        """Re-read a venue after a committed change, here and on every other replica."""
        self._load(venue_id)
        if self._bus is not None:
            self._bus.publish(VENUES_CHANNEL, {"venue": venue_id, "origin": self._replica_id})

    def _load(self, venue_id: int) -> None:
        # Serialised, so the last rebuild sees the last commit.
        with self._rebuild_lock, self._sessions() as session:
            venue = session.get(Venue, venue_id)
            if venue is None:
                self._by_venue.pop(venue_id, None)
                return
            self._by_venue[venue_id] = build_snapshot(session, venue=venue)

    def load_all(self) -> None:
        """Every venue in the database; venues deleted meanwhile are dropped."""
        with self._sessions() as session:
            ids = list(session.scalars(select(Venue.id)))
        for venue_id in set(ids).union(self._by_venue):
            self._load(venue_id)

    def close(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)

    def _on_notice(self, message: dict[str, Any]) -> None:
        venue_id = message.get("venue")
        if message.get("origin") == self._replica_id or not isinstance(venue_id, int):
            return
        self._submit(self._load, venue_id)

    def _on_reconnect(self) -> None:
        self._submit(self.load_all)

    def _submit(self, fn: Any, *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:  # the next notice or reconnect reloads; a bad one must not stop the others
                log.exception("reloading venue snapshots failed")

        if self._background is not None:
            with contextlib.suppress(RuntimeError):  # shut down
                self._background.submit(run)
