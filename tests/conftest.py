"""Shared fixtures: the app on SQLite and on PostgreSQL+PostGIS, with the same tests for both.

PostGIS tests use a throwaway database created from MALLFENCE_TEST_PG_URL. They skip when no
PostGIS is reachable, unless MALLFENCE_REQUIRE_POSTGIS=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mallfence import migrate
from mallfence.config import Settings
from mallfence.db import make_engine
from mallfence.main import create_app
from tests.auth import bearer, operator_key

PG_URL = os.environ.get("MALLFENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGIS = os.environ.get("MALLFENCE_REQUIRE_POSTGIS") == "1"
TABLES = ("zone_hourly", "zone_daily", "rollup_state", "audit_log", "consent_records", "api_keys",
          "inbound_deliveries", "purchases", "orders", "wishlist_items", "stock_levels", "products",
          "decisions", "shopper_segments", "campaigns", "delivery_attempts", "notifications", "push_tokens",
          "webhook_deliveries", "webhook_endpoints", "identity_codes", "staff_members", "qr_codes", "beacons",
          "signing_keys", "events", "devices", "shoppers", "stores", "zones", "levels", "venues")


# Hypothesis's per-example deadline measures the machine, not the code: on a loaded 2-core CI box an
# example that takes 20 ms alone takes 300. Tests check behaviour; bench/ measures time.
hypothesis.settings.register_profile("mallfence", deadline=None)
hypothesis.settings.load_profile("mallfence")


# Tests fire requests far faster than apps and operators do; the rate limits have tests of their own.
UNLIMITED = {"device_rate_per_s": 1e6, "device_burst": 1e6, "operator_rate_per_s": 1e6, "operator_burst": 1e6,
             "public_rate_per_min": 1e8}


def _pg_unavailable(reason: str) -> None:
    if REQUIRE_POSTGIS:
        pytest.fail(f"PostGIS is required (MALLFENCE_REQUIRE_POSTGIS=1) but {reason}", pytrace=False)
    pytest.skip(f"PostGIS not available: {reason}")


@pytest.fixture(scope="session")
def postgis_url() -> Iterator[str]:
    """A fresh, migrated PostGIS database for this test session; dropped at the end."""
    url = sa.make_url(PG_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"mallfence_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            if not conn.scalar(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")):
                _pg_unavailable(f"the server at {url.render_as_string()} has no postgis extension installed")
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _pg_unavailable(f"cannot connect to {url.render_as_string()}: {exc.orig}")
    except BaseException:  # the skip above, too: an undisposed pool warns at exit, and warnings are errors here
        admin.dispose()
        raise
    test_url = url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(test_url)
    migrate.upgrade(engine)
    engine.dispose()
    yield test_url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        target = tmp_path / "mallfence.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    url = request.getfixturevalue("postgis_url")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auto_migrate=True, presence_sweep_interval_s=3600, **UNLIMITED)


@pytest.fixture
def platform_key(settings: Settings) -> str:
    """A platform admin's operator key (every venue): what the tests act as unless they say otherwise."""
    return operator_key(settings.database_url)


@pytest.fixture
def client(settings: Settings, platform_key: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=bearer(platform_key)) as c:
        yield c
