"""Engine, sessions, declarative base and the one geometry column type.

Geometry is a GeoAlchemy2 ``Geometry(SRID 4326)`` on PostgreSQL+PostGIS (GiST-indexed, usable in
spatial SQL) and WKB bytes on SQLite (this Python cannot load SpatiaLite). Either way the ORM hands
services shapely objects.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapely
from geoalchemy2 import Geometry
from geoalchemy2.elements import WKBElement
from shapely.geometry.base import BaseGeometry
from sqlalchemy import DateTime, Engine, LargeBinary, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class GeometryType(TypeDecorator[BaseGeometry]):
    """WGS84 geometry: PostGIS ``geometry(GEOMETRY, 4326)`` or WKB on SQLite; shapely in Python."""

    impl = LargeBinary
    cache_ok = True
    # Read by GeoAlchemy2's DDL hooks; the migration creates the GiST index itself.
    spatial_index = False
    srid = 4326
    geometry_type = "GEOMETRY"
    dimension = 2
    use_typmod = None

    def load_dialect_impl(self, dialect: Dialect | None) -> Any:
        # GeoAlchemy2's DDL hooks ask with dialect=None; answer as for PostGIS so they see a geometry.
        if dialect is None:
            return Geometry(geometry_type="GEOMETRY", srid=4326, spatial_index=False)
        if dialect.name == "postgresql":
            # The GiST index is created by the migration, so GeoAlchemy2 must not add its own.
            return dialect.type_descriptor(Geometry(geometry_type="GEOMETRY", srid=4326, spatial_index=False))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return WKBElement(shapely.to_wkb(value, include_srid=False), srid=4326, extended=False)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        if isinstance(value, WKBElement):
            data = value.data
            return shapely.from_wkb(bytes(data) if not isinstance(data, str) else data)
        return shapely.from_wkb(bytes(value) if not isinstance(value, str) else value)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        _SQLITE_WRITERS[engine] = threading.RLock()
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# SQLite has one writer at a time, and a writer that finds the file locked polls with growing sleeps (1, 2,
# 5 ... 100 ms): under ingest plus the dispatcher that added ~250 ms to an event's store (bench/ws_ingest.py,
# p99 of a websocket message 265 ms). Writers of this process queue on a lock instead and start the moment
# the last one commits; busy_timeout still covers other processes (``mallfence dispatch`` on the same file).
# The lock is made with the engine (make_engine).
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits together or not at all (on SQLite holding the write lock from the start)."""
    bind = factory.kw.get("bind")
    writers = _SQLITE_WRITERS.get(bind) if isinstance(bind, Engine) else None
    if writers is not None:
        with writers, _begin(factory) as session:
            yield session
    else:
        with _begin(factory) as session:
            yield session


@contextmanager
def _begin(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        conn = session.connection()
        if conn.dialect.name == "sqlite":
            # In WAL mode a transaction that has read, then writes, fails at once with "database is locked"
            # when another writer committed since its read (SQLITE_BUSY_SNAPSHOT; waiting cannot help).
            # Taking the write lock first makes a writer wait its turn (busy_timeout) instead of failing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield session
