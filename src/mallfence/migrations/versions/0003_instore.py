"""In-store location: beacons, signing keys, QR codes, shoppers, consent, staff, identity codes, scan events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mallfence.db import GeometryType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "shoppers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("loyalty_id", sa.String(64), nullable=True),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("shoppers", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_shoppers"),
        sa.UniqueConstraint("venue_id", "loyalty_id", name="uq_shoppers_venue_id_loyalty_id"),
    )
    op.create_index("ix_shoppers_venue_id", "shoppers", ["venue_id"])
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        _fk("signing_keys", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_signing_keys"),
        sa.UniqueConstraint("venue_id", "purpose", "kid", name="uq_signing_keys_venue_id_purpose_kid"),
    )
    op.create_index("ix_signing_keys_venue_id", "signing_keys", ["venue_id"])
    op.create_table(
        "beacons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("level_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("position", GeometryType(), nullable=False),
        sa.Column("power_1m", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("beacons", "level_id", "levels", "RESTRICT"),
        _fk("beacons", "venue_id", "venues", "CASCADE"),
        _fk("beacons", "zone_id", "zones", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_beacons"),
        sa.UniqueConstraint("venue_id", "key", name="uq_beacons_venue_id_key"),
        sa.UniqueConstraint("venue_id", "external_id", name="uq_beacons_venue_id_external_id"),
    )
    op.create_index("ix_beacons_level_id", "beacons", ["level_id"])
    op.create_index("ix_beacons_venue_id", "beacons", ["venue_id"])
    op.create_table(
        "qr_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("position", GeometryType(), nullable=True),
        sa.Column("level_id", sa.Integer(), nullable=True),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("qr_codes", "level_id", "levels", "RESTRICT"),
        _fk("qr_codes", "store_id", "stores", "CASCADE"),
        _fk("qr_codes", "venue_id", "venues", "CASCADE"),
        _fk("qr_codes", "zone_id", "zones", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_qr_codes"),
        sa.UniqueConstraint("venue_id", "code", name="uq_qr_codes_venue_id_code"),
    )
    op.create_index("ix_qr_codes_venue_id", "qr_codes", ["venue_id"])
    op.create_table(
        "staff_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=True),
        _fk("staff_members", "store_id", "stores", "CASCADE"),
        _fk("staff_members", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_staff_members"),
        sa.UniqueConstraint("token_hash", name="uq_staff_members_token_hash"),
    )
    op.create_index("ix_staff_members_store_id", "staff_members", ["store_id"])
    op.create_index("ix_staff_members_venue_id", "staff_members", ["venue_id"])
    op.create_table(
        "identity_codes",
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("used_by", sa.Integer(), nullable=True),
        _fk("identity_codes", "device_id", "devices", "CASCADE"),
        _fk("identity_codes", "store_id", "stores", "CASCADE"),
        sa.ForeignKeyConstraint(["used_by"], ["staff_members.id"], name="fk_identity_codes_used_by_staff_members",
                                ondelete="SET NULL"),
        _fk("identity_codes", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("nonce", name="pk_identity_codes"),
    )
    op.create_index("ix_identity_codes_device_id", "identity_codes", ["device_id"])
    op.create_index("ix_identity_codes_expires_at", "identity_codes", ["expires_at"])
    op.create_index("ix_identity_codes_venue_id", "identity_codes", ["venue_id"])

    # Every existing device gets its own shopper (same id): added nullable, filled, then required.
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shopper_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("consent", sa.JSON(), nullable=True))
    op.execute("INSERT INTO shoppers (id, venue_id, created_at, updated_at) "
               "SELECT id, venue_id, created_at, created_at FROM devices")
    op.execute("UPDATE devices SET shopper_id = id")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.alter_column("shopper_id", existing_type=sa.String(36), nullable=False)
        batch_op.create_index("ix_devices_shopper_id", ["shopper_id"], unique=False)
        batch_op.create_foreign_key("fk_devices_shopper_id_shoppers", "shoppers", ["shopper_id"], ["id"],
                                    ondelete="CASCADE")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=True))
        batch_op.alter_column("zone_id", existing_type=sa.Integer(), nullable=True)

    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("path_loss_exponent", sa.Float(), server_default="2.5", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.drop_column("path_loss_exponent")
    op.execute("DELETE FROM events WHERE zone_id IS NULL")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("zone_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("data")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint("fk_devices_shopper_id_shoppers", type_="foreignkey")
        batch_op.drop_index("ix_devices_shopper_id")
        batch_op.drop_column("consent")
        batch_op.drop_column("shopper_id")
    for table in ("identity_codes", "staff_members", "qr_codes", "beacons", "signing_keys", "shoppers"):
        op.drop_table(table)
