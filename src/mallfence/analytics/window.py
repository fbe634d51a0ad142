"""The time range an analytics question covers, checked and rounded to the whole hours rollups hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mallfence.errors import Invalid, Issue

MAX_DAYS = 92  # a quarter: longer ranges belong in an export, not in one request
DEFAULT_DAYS = 7
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Window:
    lo: datetime  # inclusive, on a UTC hour
    hi: datetime  # exclusive, on a UTC hour
    tz: ZoneInfo


def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    floor = _floor_hour(t)
    return floor if floor == t.astimezone(UTC) else floor + HOUR


def window(*, start: datetime | None, end: datetime | None, tz: ZoneInfo, by_day: bool = False,
           now: datetime | None = None) -> Window:
    """[from, to) widened to whole UTC hours (to whole local days when ``by_day``); default: the last 7 days.

    Refuses (422, naming the field) a range that ends before it starts or spans more than ``MAX_DAYS``."""
    end = end or _ceil_hour(now or datetime.now(UTC))
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise Invalid(Issue(("query", "from"), f"from ({start.isoformat()}) must be before to ({end.isoformat()})"))
    if end - start > timedelta(days=MAX_DAYS):
        raise Invalid(Issue(("query", "to"), f"the range spans {(end - start).days} days; at most {MAX_DAYS} "
                                             "days per request"))
    if by_day:  # local midnights, then the UTC hours holding them (exact for whole-hour offsets)
        first = datetime.combine(start.astimezone(tz).date(), datetime.min.time(), tz)
        last_day = (end - timedelta(microseconds=1)).astimezone(tz).date() + timedelta(days=1)
        start, end = first, datetime.combine(last_day, datetime.min.time(), tz)
    return Window(_floor_hour(start), _ceil_hour(end), tz)
