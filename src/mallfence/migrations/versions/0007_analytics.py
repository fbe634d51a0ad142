"""Analytics: hourly zone rollups, distinct visitors per zone and local day, the rollup job's position in
the event log, events by venue and time.

The (venue_id, occurred_at) index replaces the plain venue_id one: it serves every query that one did and
lets analytics read a month of a venue's events without scanning the rest. ix_events_enters, partial on
enters and holding zone and device, lets distinct shoppers, paths and funnel visits be counted from the
index alone.

Revision ID: a0007
Revises: s0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mallfence.db import UTCDateTime

revision = "a0007"
down_revision = "s0006"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BINS = ("lt_1m", "1_5m", "5_15m", "15_30m", "30_60m", "ge_60m")


def upgrade() -> None:
    op.create_table(
        "zone_hourly",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.Column("stays", sa.Integer(), nullable=False),
        sa.Column("stay_s", sa.Float(), nullable=False),
        *(sa.Column(f"dwell_{b}", sa.Integer(), nullable=False) for b in BINS),
        sa.PrimaryKeyConstraint("zone_id", "hour", name="pk_zone_hourly"),
    )
    op.create_index("ix_zone_hourly_venue_id_hour", "zone_hourly", ["venue_id", "hour"])
    op.create_table(
        "zone_daily",
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("day_start", UTCDateTime(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("visitors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("zone_id", "day_start", name="pk_zone_daily"),
    )
    op.create_index("ix_zone_daily_venue_id_day_start", "zone_daily", ["venue_id", "day_start"])
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_event_id", BIGINT, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_rollup_state"),
    )
    op.create_index("ix_events_venue_id_occurred_at", "events", ["venue_id", "occurred_at"])
    enters = sa.text("kind = 'enter'")
    op.create_index("ix_events_enters", "events", ["venue_id", "occurred_at", "zone_id", "device_id"],
                    postgresql_where=enters, sqlite_where=enters)
    op.drop_index("ix_events_venue_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_venue_id", "events", ["venue_id"])
    op.drop_index("ix_events_enters", table_name="events")
    op.drop_index("ix_events_venue_id_occurred_at", table_name="events")
    op.drop_table("rollup_state")
    op.drop_table("zone_daily")
    op.drop_table("zone_hourly")
