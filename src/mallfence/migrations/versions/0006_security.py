"""Security and privacy: operator keys, the audit log, consent history, venue app keys, spoofing flags on events.

Revision ID: s0006
Revises: c0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from mallfence.db import UTCDateTime

revision = "s0006"
down_revision = "c0004"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("all_venues", sa.Boolean(), nullable=False),
        sa.Column("venue_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=True),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name="fk_audit_log_venue_id_venues", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_venue_id_id", "audit_log", ["venue_id", "id"])
    op.create_table(
        "consent_records",
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("shopper_id", sa.String(36), nullable=False),
        sa.Column("location", sa.Boolean(), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("analytics", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_consent_records_device_id_devices",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shopper_id"], ["shoppers.id"], name="fk_consent_records_shopper_id_shoppers",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_consent_records"),
    )
    op.create_index("ix_consent_records_device_id_id", "consent_records", ["device_id", "id"])
    op.create_index("ix_consent_records_shopper_id", "consent_records", ["shopper_id"])
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app_key", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("app_key_previous", sa.String(64), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.JSON(), nullable=True))
    # Existing venues get an app key now: their apps must send it to register from this version on.
    venues = sa.table("venues", sa.column("id", sa.Integer()), sa.column("app_key", sa.String()))
    conn = op.get_bind()
    for (venue_id,) in conn.execute(sa.select(venues.c.id)).all():
        conn.execute(venues.update().where(venues.c.id == venue_id)
                     .values(app_key="mfa_" + secrets.token_urlsafe(18)))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("flags")
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.drop_column("app_key_previous")
        batch_op.drop_column("app_key")
    for table in ("consent_records", "audit_log", "api_keys"):
        op.drop_table(table)
