"""Initial schema: venues, levels, zones, stores, devices, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mallfence.db import GeometryType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KINDS = "'venue', 'entrance', 'corridor', 'store', 'department', 'pickup', 'food_court', 'parking', 'custom'"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "venues",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("anchor_lon", sa.Float(), nullable=False),
        sa.Column("anchor_lat", sa.Float(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_venues"),
        sa.UniqueConstraint("slug", name="uq_venues_slug"),
    )
    op.create_table(
        "levels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("venue_id", sa.Integer(), sa.ForeignKey("venues.id", ondelete="CASCADE",
                  name="fk_levels_venue_id_venues"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("short_name", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_levels"),
        sa.UniqueConstraint("venue_id", "ordinal", name="uq_levels_venue_id_ordinal"),
    )
    op.create_index("ix_levels_venue_id", "levels", ["venue_id"])
    op.create_table(
        "zones",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("venue_id", sa.Integer(), sa.ForeignKey("venues.id", ondelete="CASCADE",
                  name="fk_zones_venue_id_venues"), nullable=False),
        sa.Column("level_id", sa.Integer(), sa.ForeignKey("levels.id", ondelete="RESTRICT",
                  name="fk_zones_level_id_levels"), nullable=True),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("geometry", GeometryType(), nullable=False),
        sa.Column("area", GeometryType(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("presence", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_zones"),
        sa.UniqueConstraint("venue_id", "external_id", name="uq_zones_venue_id_external_id"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_zones_kind"),
    )
    op.create_index("ix_zones_venue_id", "zones", ["venue_id"])
    op.create_index("ix_zones_level_id", "zones", ["level_id"])
    if postgres:
        op.create_index("ix_zones_area", "zones", ["area"], postgresql_using="gist")
    op.create_table(
        "stores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("venue_id", sa.Integer(), sa.ForeignKey("venues.id", ondelete="CASCADE",
                  name="fk_stores_venue_id_venues"), nullable=False),
        sa.Column("zone_id", sa.Integer(), sa.ForeignKey("zones.id", ondelete="SET NULL",
                  name="fk_stores_zone_id_zones"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("opening_hours", sa.JSON(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_stores"),
        sa.UniqueConstraint("zone_id", name="uq_stores_zone_id"),
    )
    op.create_index("ix_stores_venue_id", "stores", ["venue_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("venue_id", sa.Integer(), sa.ForeignKey("venues.id", ondelete="CASCADE",
                  name="fk_devices_venue_id_venues"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("app_version", sa.String(64), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
    )
    op.create_index("ix_devices_venue_id", "devices", ["venue_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("venue_id", sa.Integer(), sa.ForeignKey("venues.id", ondelete="CASCADE",
                  name="fk_events_venue_id_venues"), nullable=False),
        sa.Column("device_id", sa.String(36), sa.ForeignKey("devices.id", ondelete="CASCADE",
                  name="fk_events_device_id_devices"), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("fix_id", sa.String(64), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("floor", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_venue_id", "events", ["venue_id"])
    op.create_index("ix_events_device_id_id", "events", ["device_id", "id"])
    op.create_index("ix_events_zone_id_occurred_at", "events", ["zone_id", "occurred_at"])


def downgrade() -> None:
    for table in ("events", "devices", "stores", "zones", "levels", "venues"):
        op.drop_table(table)
