"""Engagement: campaigns, the decision log, shopper segments, push preferences and venue push policies.

Revision ID: e0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mallfence.db import UTCDateTime

revision = "e0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("min_stay_s", sa.Float(), nullable=True),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("incentives", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("cooldown_s", sa.Float(), nullable=False),
        sa.Column("holdout", sa.Float(), nullable=False),
        sa.Column("skus", sa.JSON(), nullable=False),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name="fk_campaigns_venue_id_venues", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
    )
    op.create_index("ix_campaigns_venue_id", "campaigns", ["venue_id"])
    op.create_table(
        "decisions",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("shopper_id", sa.String(36), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("event_id", BIGINT, nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("notification_id", BIGINT, nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name="fk_decisions_venue_id_venues", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_decisions_device_id_devices",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_decisions_shopper_id_shoppers",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_decisions_campaign_id_campaigns",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_venue_id", "decisions", ["venue_id"])
    op.create_index("ix_decisions_device_id_id", "decisions", ["device_id", "id"])
    op.create_index("ix_decisions_shopper_id_at", "decisions", ["shopper_id", "at"])
    op.create_index("ix_decisions_campaign_id_at", "decisions", ["campaign_id", "at"])
    op.create_index("ix_decisions_notification_id", "decisions", ["notification_id"])
    op.create_table(
        "shopper_segments",
        sa.Column("shopper_id", sa.String(36), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(16), nullable=False),
        sa.Column("decline", sa.Float(), nullable=True),
        sa.Column("explain", sa.JSON(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_shopper_segments_shopper_id_shoppers",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name="fk_shopper_segments_venue_id_venues",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("shopper_id", name="pk_shopper_segments"),
    )
    op.create_index("ix_shopper_segments_venue_id", "shopper_segments", ["venue_id"])
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preferences", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("push_policy", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.drop_column("push_policy")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("preferences")
    for table in ("shopper_segments", "decisions", "campaigns"):
        op.drop_table(table)
