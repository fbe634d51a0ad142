"""Migrations: the schema they build is the one the models describe, and upgrades keep existing data."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mallfence import migrate
from mallfence.db import make_engine
from mallfence.models import Base


def test_migrations_build_exactly_what_the_models_say(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    # The GiST index on zones.area is the migration's alone (the model type must not make GeoAlchemy2 add
    # another); PostGIS's own table is not ours to describe.
    diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name == "ix_zones_area")
            and not (d[0] == "remove_table" and d[1].name == "spatial_ref_sys")]
    assert diff == [], "write a migration for: " + repr(diff)


def test_upgrading_from_0002_gives_every_device_its_own_shopper(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO venues (slug, name, timezone, anchor_lon, anchor_lat, created_at, "
                             "updated_at) VALUES ('v', 'V', 'UTC', 0, 0, '2026-11-01', '2026-11-01')"))
        for device in ("d1", "d2"):
            conn.execute(sa.text("INSERT INTO devices (id, venue_id, token_hash, platform, created_at) "
                                 "VALUES (:d, 1, 'h', 'ios', '2026-11-01')"), {"d": device})
        conn.execute(sa.text("INSERT INTO events (venue_id, device_id, zone_id, kind, occurred_at, recorded_at, "
                             "source) VALUES (1, 'd1', 5, 'enter', '2026-11-01', '2026-11-01', 'gps')"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, shopper_id FROM devices ORDER BY id")).all() == [("d1", "d1"),
                                                                                                ("d2", "d2")]
        assert conn.execute(sa.text("SELECT count(*) FROM shoppers WHERE venue_id = 1")).scalar() == 2
        assert conn.execute(sa.text("SELECT zone_id, data FROM events")).all() == [(5, None)]
        assert conn.execute(sa.text("SELECT path_loss_exponent FROM venues")).scalar() == 2.5
    migrate.downgrade(engine, "0002")  # and back down, without losing the devices
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM devices")).scalar() == 2
    engine.dispose()
