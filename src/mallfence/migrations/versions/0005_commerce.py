"""Commerce: products, stock per store, wishlists, click-and-collect orders, purchases, inbound webhook deliveries.

Revision ID: c0004
Revises: e0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mallfence.db import UTCDateTime

revision = "c0004"
down_revision = "e0004"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("brand", sa.String(100), nullable=True),
        sa.Column("image_url", sa.String(2048), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("products", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint("venue_id", "sku", name="uq_products_venue_id_sku"),
    )
    op.create_index("ix_products_venue_id", "products", ["venue_id"])
    op.create_table(
        "stock_levels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("low_threshold", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _fk("stock_levels", "product_id", "products", "CASCADE"),
        _fk("stock_levels", "store_id", "stores", "CASCADE"),
        _fk("stock_levels", "venue_id", "venues", "CASCADE"),
        sa.CheckConstraint("level IN ('in_stock', 'low', 'out')", name="ck_stock_levels_level"),
        sa.CheckConstraint("quantity >= 0", name="ck_stock_levels_quantity"),
        sa.PrimaryKeyConstraint("id", name="pk_stock_levels"),
        sa.UniqueConstraint("store_id", "product_id", name="uq_stock_levels_store_id_product_id"),
    )
    op.create_index("ix_stock_levels_product_id", "stock_levels", ["product_id"])
    op.create_index("ix_stock_levels_venue_id", "stock_levels", ["venue_id"])
    op.create_table(
        "wishlist_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shopper_id", sa.String(36), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        _fk("wishlist_items", "product_id", "products", "CASCADE"),
        _fk("wishlist_items", "shopper_id", "shoppers", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_wishlist_items"),
        sa.UniqueConstraint("shopper_id", "product_id", name="uq_wishlist_items_shopper_id_product_id"),
    )
    op.create_index("ix_wishlist_items_product_id", "wishlist_items", ["product_id"])
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("shopper_id", sa.String(36), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("pickup_zone_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("ready_by", UTCDateTime(), nullable=True),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.Column("ready_at", UTCDateTime(), nullable=True),
        sa.Column("arrived_at", UTCDateTime(), nullable=True),
        sa.Column("collected_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("wait_s", sa.Float(), nullable=True),
        sa.Column("collected_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["collected_by"], ["staff_members.id"], name="fk_orders_collected_by_staff_members",
                                ondelete="SET NULL"),
        _fk("orders", "pickup_zone_id", "zones", "SET NULL"),
        _fk("orders", "shopper_id", "shoppers", "CASCADE"),
        _fk("orders", "store_id", "stores", "CASCADE"),
        _fk("orders", "venue_id", "venues", "CASCADE"),
        sa.CheckConstraint("status IN ('placed', 'ready', 'collected', 'cancelled')", name="ck_orders_status"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("venue_id", "external_id", name="uq_orders_venue_id_external_id"),
    )
    op.create_index("ix_orders_shopper_id_status", "orders", ["shopper_id", "status"])
    op.create_index("ix_orders_store_id", "orders", ["store_id"])
    op.create_index("ix_orders_venue_id", "orders", ["venue_id"])
    op.create_table(
        "purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("shopper_id", sa.String(36), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("purchased_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        _fk("purchases", "shopper_id", "shoppers", "CASCADE"),
        _fk("purchases", "store_id", "stores", "SET NULL"),
        _fk("purchases", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_purchases"),
        sa.UniqueConstraint("venue_id", "external_id", name="uq_purchases_venue_id_external_id"),
    )
    op.create_index("ix_purchases_shopper_id_purchased_at", "purchases", ["shopper_id", "purchased_at"])
    op.create_index("ix_purchases_venue_id", "purchases", ["venue_id"])
    op.create_table(
        "inbound_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(16), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        _fk("inbound_deliveries", "venue_id", "venues", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_deliveries"),
        sa.UniqueConstraint("venue_id", "delivery_id", name="uq_inbound_deliveries_venue_id_delivery_id"),
    )
    op.create_index("ix_inbound_deliveries_received_at", "inbound_deliveries", ["received_at"])
    op.create_index("ix_inbound_deliveries_venue_id", "inbound_deliveries", ["venue_id"])


def downgrade() -> None:
    for table in ("inbound_deliveries", "purchases", "orders", "wishlist_items", "stock_levels", "products"):
        op.drop_table(table)
    # Commerce signing keys mean nothing to a schema without commerce.
    op.execute("DELETE FROM signing_keys WHERE purpose = 'commerce'")
