"""Hourly rollups of zone events, and how far the rollup job has read the event log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mallfence.db import Base, UTCDateTime, utcnow
from mallfence.tracking.models import EventId

# Upper edges (seconds) of the dwell histogram's bins; the last bin is open: <1, 1-5, 5-15, 15-30, 30-60, >=60 min.
DWELL_EDGES_S = (60.0, 300.0, 900.0, 1800.0, 3600.0)
DWELL_BINS = ("lt_1m", "1_5m", "5_15m", "15_30m", "30_60m", "ge_60m")


class ZoneHourly(Base):
    """One zone, one UTC hour: enters, distinct devices that entered, and the stays that ended (exits).

    Every column but ``visitors`` adds up across hours; distinct devices over several hours are counted
    from the events themselves (analytics.service). No FK: like the event log, rollups outlive a zone.
    """

    __tablename__ = "zone_hourly"
    __table_args__ = (Index("ix_zone_hourly_venue_id_hour", "venue_id", "hour"),)

    zone_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # start of the UTC hour
    venue_id: Mapped[int] = mapped_column(Integer)
    visits: Mapped[int] = mapped_column(Integer)  # enter events
    visitors: Mapped[int] = mapped_column(Integer)  # distinct devices among them
    stays: Mapped[int] = mapped_column(Integer)  # exit events that carry a duration
    stay_s: Mapped[float] = mapped_column(Float)  # sum of those durations
    dwell_lt_1m: Mapped[int] = mapped_column(Integer)
    dwell_1_5m: Mapped[int] = mapped_column(Integer)
    dwell_5_15m: Mapped[int] = mapped_column(Integer)
    dwell_15_30m: Mapped[int] = mapped_column(Integer)
    dwell_30_60m: Mapped[int] = mapped_column(Integer)
    dwell_ge_60m: Mapped[int] = mapped_column(Integer)


class ZoneDaily(Base):
    """One zone, one venue-local day: distinct devices that entered. The day's other numbers are the sums of
    its hours; this one is not, and a month's footfall by day would otherwise count it from every event."""

    __tablename__ = "zone_daily"
    __table_args__ = (Index("ix_zone_daily_venue_id_day_start", "venue_id", "day_start"),)

    zone_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The local midnight as a UTC instant: a change of the venue's timezone moves midnights, and rows of the
    # old ones are then simply not found (and recomputed from the events) instead of being misread.
    day_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    venue_id: Mapped[int] = mapped_column(Integer)
    visitors: Mapped[int] = mapped_column(Integer)


class RollupState(Base):
    """The last event id a rollup has taken in: the next pass reads the log from there."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(EventId, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
