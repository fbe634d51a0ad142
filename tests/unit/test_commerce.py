"""Commerce's pure pieces: the order status machine, stock levels, money in minor units, walking hints."""

from __future__ import annotations

from decimal import Decimal

import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from mallfence.commerce.nearby import FLOOR_CHANGE_M, Spot, rounded_m, walk_hint, walking_many
from mallfence.commerce.orders import NEXT, check_transition
from mallfence.commerce.purchases import from_minor, to_minor
from mallfence.commerce.service import level_of
from mallfence.errors import Conflict, Invalid
from mallfence.spatial.projection import LocalProjection

STATUSES = tuple(NEXT)
ALLOWED = {("placed", "ready"), ("placed", "cancelled"), ("ready", "collected"), ("ready", "cancelled")}


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_the_status_machine(current: str, new: str) -> None:
    if current == new or (current, new) in ALLOWED:
        check_transition("W-1", current, new)
        return
    with pytest.raises(Conflict) as exc:
        check_transition("W-1", current, new)
    assert f"'W-1' is {'already ' if current in ('collected', 'cancelled') else ''}{current}" in exc.value.message


@pytest.mark.parametrize(("quantity", "low", "level"), [
    (0, 3, "out"), (1, 3, "low"), (3, 3, "low"), (4, 3, "in_stock"), (1, 0, "in_stock"), (0, 0, "out")])
def test_stock_levels(quantity: int, low: int, level: str) -> None:
    assert level_of(quantity, low) == level


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("49.90", "DKK", 4990), ("49.9", "EUR", 4990), ("1250", "JPY", 1250), ("1.234", "KWD", 1234),
    ("-5.00", "GBP", -500), ("1E+2", "USD", 10000)])
def test_amounts_in_minor_units(amount: str, currency: str, minor: int) -> None:
    assert to_minor(Decimal(amount), currency, ("amount",)) == minor
    assert Decimal(from_minor(minor, currency)) == Decimal(amount)


@pytest.mark.parametrize(("amount", "currency"), [("49.999", "DKK"), ("10.5", "JPY"), ("0.0001", "KWD")])
def test_amounts_finer_than_the_currency_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(Invalid, match=f"more decimals than {currency}"):
        to_minor(Decimal(amount), currency, ("amount",))


@given(st.integers(min_value=-10**12, max_value=10**12), st.sampled_from(["DKK", "JPY", "KWD"]))
def test_minor_units_round_trip(minor: int, currency: str) -> None:
    assert to_minor(Decimal(from_minor(minor, currency)), currency, ("amount",)) == minor


def test_walking_metres_add_a_walk_per_floor() -> None:
    proj = LocalProjection(10.159, 56.124)
    shops = [proj.geometry_to_wgs84(shapely.box(10, 0, 20, 10)), None]
    assert walking_many(Spot(0, 5, 0), shops, [0, 0], proj) == [pytest.approx(10), None]
    assert walking_many(Spot(15, 5, 2), shops, [0, 0], proj)[0] == pytest.approx(2 * FLOOR_CHANGE_M)  # above it
    assert walking_many(Spot(0, 5, None), shops, [1, 0], proj)[0] == pytest.approx(10)  # floor unknown: no guess


@pytest.mark.parametrize(("metres", "says"), [
    (0.0, "Level 1, right here"), (4.9, "Level 1, right here"), (5, "Level 1, about 10 m"),
    (44, "Level 1, about 40 m"), (45, "Level 1, about 50 m"), (130, "Level 1, about 150 m"),
    (1440, "Level 1, about 1400 m")])
def test_walk_hints(metres: float, says: str) -> None:
    assert walk_hint("Level 1", metres) == says
    assert walk_hint(None, None) is None and walk_hint(None, 44) == "about 40 m"


@given(st.floats(min_value=0, max_value=5000))
def test_rounding_is_a_step_and_never_zero(metres: float) -> None:
    rounded = rounded_m(metres)
    step = 10 if metres < 100 else 50 if metres < 1000 else 100
    assert rounded % step == 0 and rounded >= step and abs(rounded - metres) <= max(step / 2, step - metres)
