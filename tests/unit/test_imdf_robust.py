"""Whatever an archive holds, the import answers with a plan or an Invalid naming the problem; never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mallfence.errors import Invalid
from mallfence.venues.imdf_archive import read_zip
from mallfence.venues.imdf_features import read_features
from mallfence.venues.imdf_plan import build_plan
from tests.imdf_archives import mall, zip_archive

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FILES = mall()
FIELDS = sorted({(kind, i, key) for kind, items in FILES.items() for i, f in enumerate(items)
                 for key in [*f, *(f"properties.{p}" for p in f["properties"])]})


def outcome(data: bytes) -> str:
    try:
        build_plan(read_features(read_zip(data)))
    except Invalid as exc:
        assert exc.issues and all(i.msg for i in exc.issues)
        return "invalid"
    return "planned"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), JSON)
def test_any_value_in_any_field(field: tuple[str, int, str], value: Any) -> None:
    kind, i, key = field
    files = mall()
    target = files[kind][i]
    if key.startswith("properties."):
        target["properties"][key.split(".", 1)[1]] = value
    else:
        target[key] = value
    outcome(zip_archive(files))


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8))
def test_any_corruption_of_the_zip_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray(zip_archive(mall()))
    for at, byte in flips:
        data[at % len(data)] = byte
    outcome(bytes(data))
