"""OSM opening_hours (IMDF hours) to mallfence weeks: tables of what converts, what is refused, round trips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mallfence.venues.imdf_hours import DAYS, HoursNotConverted, from_osm, to_osm, valid_at
from mallfence.venues.schemas import OpeningHours


def week(**days: list[list[str]]) -> dict[str, list[list[str]]]:
    return {d: days.get(d, []) for d in DAYS}


ALL = ["00:00", "24:00"]
WEEKDAYS = {key: [["09:00", "18:00"]] for key in DAYS[:5]}

CONVERTS = [
    ("Mo-Fr 09:00-18:00", week(**WEEKDAYS)),
    ("Mo-Fr 09:00-18:00; Sa 10:00-16:00; Su off", week(**WEEKDAYS, sat=[["10:00", "16:00"]])),
    ("Mo-Fr 9:00-18:00", week(**WEEKDAYS)),  # one-digit hours are common in the wild
    ("24/7", week(**{key: [ALL] for key in DAYS})),
    ("10:00-20:00", week(**{key: [["10:00", "20:00"]] for key in DAYS})),  # times without days: every day
    ("Mo-Sa 09:00-20:00; Su 11:00-18:00",
     week(**{key: [["09:00", "20:00"]] for key in DAYS[:6]}, sun=[["11:00", "18:00"]])),
    # lunch break
    ("Mo-Fr 09:00-13:00,14:00-18:00", week(**{key: [["09:00", "13:00"], ["14:00", "18:00"]] for key in DAYS[:5]})),
    # day lists and a range that wraps over Sunday
    ("Mo,We,Fr 10:00-12:00", week(mon=[["10:00", "12:00"]], wed=[["10:00", "12:00"]], fri=[["10:00", "12:00"]])),
    ("Fr-Mo 10:00-12:00", week(fri=[["10:00", "12:00"]], sat=[["10:00", "12:00"]], sun=[["10:00", "12:00"]],
                                mon=[["10:00", "12:00"]])),
    # a later ";" rule replaces the days it names
    ("Mo-Su 10:00-20:00; Su 12:00-16:00",
     week(**{key: [["10:00", "20:00"]] for key in DAYS[:6]}, sun=[["12:00", "16:00"]])),
    ("Mo-Su 10:00-20:00; We off", week(**{d: [["10:00", "20:00"]] for d in DAYS if d != "wed"})),
    # a "," rule adds to the days it names, and overlapping spans merge
    ("Mo 10:00-12:00, Mo 11:00-14:00, Tu 09:00-10:00", week(mon=[["10:00", "14:00"]], tue=[["09:00", "10:00"]])),
    # past midnight: the rest belongs to the next morning
    ("Fr-Sa 20:00-02:00", week(fri=[["20:00", "24:00"]], sat=[["00:00", "02:00"], ["20:00", "24:00"]],
                               sun=[["00:00", "02:00"]])),
    ("Su 22:00-26:00", week(sun=[["22:00", "24:00"]], mon=[["00:00", "02:00"]])),
    ("Sa-Su", week(sat=[ALL], sun=[ALL])),  # a weekday alone is open all day
    ("open", week(**{key: [ALL] for key in DAYS})),
    ("off", week()),
    ("closed", week()),
    ("Mo-Fr 09:00-18:00;", week(**WEEKDAYS)),  # a trailing separator is harmless
    ("Mo-Fr 09:00 - 18:00 ;  Sa  10:00-16:00",
     week(**WEEKDAYS, sat=[["10:00", "16:00"]])),
]


@pytest.mark.parametrize(("value", "expected"), CONVERTS)
def test_weekly_hours_convert_exactly(value: str, expected: dict) -> None:
    got = from_osm(value)
    assert got.hours == expected
    assert got.notes == []
    OpeningHours(**got.hours)  # and mallfence accepts what came out


NOTED = [
    ("Mo-Sa 10:00-20:00; PH off", week(**{key: [["10:00", "20:00"]] for key in DAYS[:6]}), "holiday rule (PH)"),
    ("Mo-Fr,PH 10:00-18:00", week(**{key: [["10:00", "18:00"]] for key in DAYS[:5]}), "PH dropped"),
    ("SH 10:00-14:00; Mo 10:00-12:00", week(mon=[["10:00", "12:00"]]), "holiday rule (SH)"),
    ('Mo-Fr 09:00-17:00 "by appointment"', week(**{key: [["09:00", "17:00"]] for key in DAYS[:5]}), "comment"),
]


@pytest.mark.parametrize(("value", "expected", "note"), NOTED)
def test_holidays_and_comments_are_dropped_with_a_note(value: str, expected: dict, note: str) -> None:
    got = from_osm(value)
    assert got.hours == expected
    assert any(note in n for n in got.notes), got.notes


REFUSED = [
    ("Jan-Mar Mo-Fr 10:00-18:00", "'Jan' at 0"),
    ("2024 Mo 10:00-12:00", "'2024' at 0"),
    ("week 1-20 Mo 10:00-12:00", "'week' at 0"),
    ("Mo 10:00+", "'10:00+' at 3"),
    ("Mo 10:00-12:00+", "open end"),
    ("sunrise-sunset", "'sunrise'"),
    ("Mo-Fr 10:00-18:00 || Sa 10:00-14:00", "'||'"),
    ("Su[1] 10:00-12:00", "nth-weekday"),
    ("unknown", "not known"),
    ("Mo 10:00-12:00 off", "followed by 'off'"),
    ("Mo 25:00-26:00", "not a time span"),
    ("Mo 10:60-12:00", "not a time span"),
    ("Mo 00:00-49:00", "not a time span"),
    ("Mo 08:00-33:00", "longer than a day"),
    (";Mo 10:00-12:00", "empty rule"),
    ("Mo 10:00-12:00;; Tu 10:00-12:00", "empty rule"),
    ("Mo 10:00-12:00 Tu", "unexpected 'Tu'"),
    ("Mo 10:00-12:00,", "unexpected ','"),
    ("", "non-empty"),
    ("   ", "non-empty"),
]


@pytest.mark.parametrize(("value", "words"), REFUSED)
def test_what_a_week_cannot_express_is_refused_with_the_reason(value: str, words: str) -> None:
    with pytest.raises(HoursNotConverted) as info:
        from_osm(value)
    assert words in str(info.value)


def test_not_a_string_is_refused() -> None:
    with pytest.raises(HoursNotConverted):
        from_osm(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("hours", "osm"), [
    (week(**{key: [ALL] for key in DAYS}), "24/7"),
    (week(**{key: [["09:00", "20:00"]] for key in DAYS[:6]}, sun=[["11:00", "18:00"]]),
     "Mo-Sa 09:00-20:00; Su 11:00-18:00"),
    (week(**{key: [["10:00", "17:00"]] for key in DAYS[:5]}, sat=[["10:00", "14:00"]]),
     "Mo-Fr 10:00-17:00; Sa 10:00-14:00; Su off"),
    (week(), "Mo-Su off"),
])
def test_weeks_are_written_compactly(hours: dict, osm: str) -> None:
    assert to_osm(hours) == osm


@st.composite
def day_spans(draw: st.DrawFn) -> list[list[str]]:
    """Sorted, non-overlapping spans of one day (they may touch), as mallfence stores them."""
    cuts = sorted(draw(st.sets(st.integers(0, 24 * 4), max_size=6)))
    spans = [(cuts[k], cuts[k + 1]) for k in range(0, len(cuts) - 1, 2)]
    return [[f"{s * 15 // 60:02d}:{s * 15 % 60:02d}", f"{e * 15 // 60:02d}:{e * 15 % 60:02d}"] for s, e in spans]


@given(st.fixed_dictionaries({d: day_spans() for d in DAYS}))
def test_any_week_survives_a_round_trip_through_osm(hours: dict) -> None:
    OpeningHours(**hours)
    assert from_osm(to_osm(hours)).hours == hours


NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("validity", "valid", "problems"), [
    (None, True, []),
    ({}, True, []),
    ({"start": "2025-01-01T00:00:00+01:00", "end": None}, True, []),
    ({"start": "2025-06-01T12:00:00Z"}, True, []),  # from the start, inclusive
    ({"end": "2025-06-01T12:00:00Z"}, False, []),  # until the end, exclusive
    ({"start": "2025-07-01T00:00:00Z"}, False, []),
    ({"start": "2025-06-01T13:00:00+02:00"}, True, []),  # 11:00 UTC
    ({"start": "2025-06-01T12:30:00"}, False, []),  # no offset: UTC
    ({"start": "soon", "end": "2020-01-01T00:00:00Z"}, False, ["validity.start 'soon' is not a date-time: ignored"]),
])
def test_validity(validity: dict | None, valid: bool, problems: list[str]) -> None:
    assert valid_at(validity, NOW) == (valid, problems)
