"""The few time expressions SQLite and PostgreSQL spell differently, as SQLAlchemy expressions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal, type_coerce
from sqlalchemy.orm import Session

from mallfence.db import UTCDateTime


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def hour_floor(column: Any, name: str) -> ColumnElement[Any]:
    """Start of the UTC hour of a ``UTCDateTime`` column, still a ``UTCDateTime``."""
    if name == "postgresql":
        expr = func.date_trunc("hour", column, literal("UTC"))
    else:  # SQLite keeps UTC datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text; this is the same format
        expr = func.strftime("%Y-%m-%d %H:00:00.000000", column)
    return type_coerce(expr, UTCDateTime)


def seconds_between(later: Any, earlier: Any, name: str) -> ColumnElement[float]:
    """``later - earlier`` in seconds."""
    if name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0
