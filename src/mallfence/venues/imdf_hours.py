"""IMDF time values: hours (OSM ``opening_hours`` strings) to mallfence opening hours and back; validity.

mallfence keeps a plain week: per weekday a list of ["HH:MM", "HH:MM"]. The weekly part of the OSM
syntax maps onto that exactly: weekday lists and ranges, time spans (also past midnight), ``24/7``,
``off``/``closed``/``open``, ``;`` rules that replace the days they name and ``,`` rules that add.
Public and school holiday rules (``PH``, ``SH``) are dropped with a note, since mallfence has no
holiday calendar; the normal week is still right. Anything else (months, dates, weeks, sun times,
open ends, ``||`` fallbacks, ``unknown``) cannot be expressed, so the value is refused whole rather
than converted into a week that is wrong on some days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OSM_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
DAY_MINUTES = 24 * 60

_TOKEN = re.compile(r"""\s*(?:
    (?P<always>24/7)
  | (?P<span>(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})(?P<plus>\+)?)
  | (?P<day>Mo|Tu|We|Th|Fr|Sa|Su)(?P<nth>\[[^\]]*\])?
  | (?P<holiday>PH|SH)
  | (?P<modifier>off|closed|open|unknown)
  | (?P<comment>"[^"]*")
  | (?P<fallback>\|\|)
  | (?P<sep>[;,\-])
  | (?P<other>[A-Za-z]+|\d+(?::\d+)?\+?|\S)
)""", re.X)

Span = tuple[int, int]  # minutes from the start of the day; the end may pass midnight (up to 48:00)


class HoursNotConverted(ValueError):
    """The value uses OSM syntax that a plain week cannot express (the message says which)."""


@dataclass
class ConvertedHours:
    hours: dict[str, list[list[str]]]
    notes: list[str] = field(default_factory=list)  # what was dropped on the way (holiday rules, comments)


@dataclass
class _Token:
    kind: str
    text: str
    pos: int
    span: Span | None = None
    day: int | None = None


def _tokens(value: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(value):
        if not value[pos:].strip():
            break
        m = _TOKEN.match(value, pos)
        assert m is not None  # the "other" branch matches any non-space character
        kind = next(k for k in ("always", "span", "day", "holiday", "modifier", "comment", "fallback", "sep",
                                "other") if m.group(k) is not None)
        text, start = m.group(kind), m.start(kind)
        if kind == "fallback":
            raise HoursNotConverted(f"fallback rules ('||' at {start}) are not supported")
        if kind == "other":
            raise HoursNotConverted(f"{text!r} at {start}: only weekdays and times are supported "
                                    "(no months, dates, weeks, sun times or open ends)")
        tok = _Token(kind, text, start)
        if kind == "day":
            if m.group("nth"):
                raise HoursNotConverted(f"{text}{m.group('nth')} at {start}: nth-weekday selectors are not supported")
            tok.day = OSM_DAYS.index(text)
        if kind == "span":
            if m.group("plus"):
                raise HoursNotConverted(f"open end {text!r} at {start} is not supported")
            tok.span = _span(int(m["h1"]), int(m["m1"]), int(m["h2"]), int(m["m2"]), text, start)
        out.append(tok)
        pos = m.end()
    return out


def _span(h1: int, m1: int, h2: int, m2: int, text: str, at: int) -> Span:
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 48 or (h2 == 48 and m2 > 0):
        raise HoursNotConverted(f"{text!r} at {at} is not a time span (HH:MM-HH:MM, opening before 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:  # 22:00-02:00 closes the next morning
        end += DAY_MINUTES
    if end - start > DAY_MINUTES:
        raise HoursNotConverted(f"{text!r} at {at} is longer than a day")
    return start, end


class _Week:
    """Spans owned by each weekday's rules; a span past midnight spills into the next day."""

    def __init__(self) -> None:
        self.own: list[list[Span]] = [[] for _ in DAYS]

    def apply(self, days: Sequence[int], spans: list[Span], add: bool) -> None:
        for d in days:
            self.own[d] = [*self.own[d], *spans] if add else list(spans)

    def result(self) -> dict[str, list[list[str]]]:
        out = {}
        for d, name in enumerate(DAYS):
            today = [(s, min(e, DAY_MINUTES)) for s, e in self.own[d]]
            spill = [(0, e - DAY_MINUTES) for _, e in self.own[d - 1] if e > DAY_MINUTES]
            out[name] = [[_hhmm(s), _hhmm(e)] for s, e in _merge(spill + today)]
        return out


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for s, e in sorted(spans):
        if merged and s < merged[-1][1]:  # overlapping; spans that only touch stay apart (a 0-minute break)
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def from_osm(value: str) -> ConvertedHours:
    """Convert an OSM opening_hours value; raises HoursNotConverted naming what cannot be expressed."""
    if not isinstance(value, str) or not value.strip():
        raise HoursNotConverted("hours must be a non-empty opening_hours string")
    week, notes = _Week(), []
    toks = _tokens(value)
    i, add = 0, False
    while i < len(toks):
        i, days, spans, holidays = _rule(toks, i, notes)
        if holidays and not days:
            notes.append(f"holiday rule ({', '.join(holidays)}) dropped: mallfence has no holiday calendar")
        elif days:
            if holidays:
                notes.append(f"{', '.join(holidays)} dropped from a rule that also names weekdays")
            week.apply(days, spans, add)
        if i < len(toks):
            sep = toks[i]
            add = sep.text == ","
            trailing = i + 1 == len(toks)
            if sep.kind != "sep" or sep.text == "-" or (trailing and sep.text != ";"):  # "...;" at the end is harmless
                raise HoursNotConverted(f"unexpected {sep.text!r} at {sep.pos}")
            i += 1
    return ConvertedHours(week.result(), notes)


def _rule(toks: list[_Token], i: int, notes: list[str]) -> tuple[int, list[int], list[Span], list[str]]:
    """One rule from toks[i]: (next index, weekdays, spans, holiday selectors)."""
    days: list[int] = []
    holidays: list[str] = []
    spans: list[Span] = []
    named, first_token = False, toks[i]
    if first_token.kind in ("sep", "comment"):
        raise HoursNotConverted(f"empty rule: unexpected {first_token.text!r} at {first_token.pos}")
    if toks[i].kind == "always":
        days, spans, i = list(range(7)), [(0, DAY_MINUTES)], i + 1
    while i < len(toks) and toks[i].kind in ("day", "holiday"):
        named = True
        if toks[i].kind == "holiday":
            holidays.append(toks[i].text)
            i += 1
        elif i + 2 < len(toks) and toks[i + 1].text == "-" and toks[i + 2].kind == "day":
            first, last = toks[i].day, toks[i + 2].day
            assert first is not None and last is not None
            days += [(first + k) % 7 for k in range((last - first) % 7 + 1)]  # Fr-Mo wraps over Sunday
            i += 3
        else:
            days.append(toks[i].day)  # type: ignore[arg-type]
            i += 1
        if not (i + 1 < len(toks) and toks[i].text == "," and toks[i + 1].kind in ("day", "holiday")):
            break
        i += 1
    while i < len(toks) and toks[i].kind == "span":
        spans.append(toks[i].span)  # type: ignore[arg-type]
        i += 1
        if not (i + 1 < len(toks) and toks[i].text == "," and toks[i + 1].kind == "span"):
            break
        i += 1
    if not named and not days:
        days = list(range(7))  # a rule of times only applies to every day
    closed = False
    if i < len(toks) and toks[i].kind == "modifier":
        word = toks[i].text
        if word == "unknown":
            raise HoursNotConverted(f"'unknown' at {toks[i].pos}: the hours are not known")
        if word in ("off", "closed") and spans:
            raise HoursNotConverted(f"times followed by {word!r} at {toks[i].pos} are not supported")
        closed = word in ("off", "closed")
        i += 1
    if not spans and not closed:
        spans = [(0, DAY_MINUTES)]  # "Sa-Su" (or "Sa-Su open") alone means open all day
    if i < len(toks) and toks[i].kind == "comment":
        notes.append(f"comment {toks[i].text} ignored")
        i += 1
    if i < len(toks) and toks[i].kind != "sep":
        raise HoursNotConverted(f"unexpected {toks[i].text!r} at {toks[i].pos}")
    return i, sorted(set(days)), spans, holidays


def to_osm(hours: Mapping[str, Sequence[Sequence[str]]]) -> str:
    """A mallfence week as an opening_hours value: runs of equal days share a rule, closed days are off."""
    week = [tuple(tuple(span) for span in hours.get(d, [])) for d in DAYS]
    if all(day == (("00:00", "24:00"),) for day in week):
        return "24/7"
    rules, d = [], 0
    while d < 7:
        end = d
        while end + 1 < 7 and week[end + 1] == week[d]:
            end += 1
        days = OSM_DAYS[d] if end == d else f"{OSM_DAYS[d]}-{OSM_DAYS[end]}"
        times = ",".join(f"{s}-{e}" for s, e in week[d]) or "off"
        rules.append(f"{days} {times}")
        d = end + 1
    return "; ".join(rules)


def valid_at(validity: Any, now: datetime) -> tuple[bool, list[str]]:
    """Whether an IMDF validity ({start, end}, date-times) holds at ``now``; unreadable bounds are ignored, named."""
    if not isinstance(validity, dict):
        return True, []
    bounds, problems = [], []
    for key in ("start", "end"):
        value = validity.get(key)
        try:
            when = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            problems.append(f"validity.{key} {value!r} is not a date-time: ignored")
            when = None
        bounds.append(when.replace(tzinfo=when.tzinfo or UTC) if when else None)  # no offset: read as UTC
    start, end = bounds
    return (start is None or start <= now) and (end is None or now < end), problems
