"""server/units.py: one way to show times, dates, yuan and tonnes."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server import units


def test_a_utc_moment_is_shown_in_beijing_time_to_the_minute():
    assert units.when("2026-12-07T06:05:59.999Z") == "2026年12月7日 14:05"
    assert units.when("2026-12-07T06:05:00+00:00") == "2026年12月7日 14:05"
    assert units.when(datetime(2026, 12, 7, 6, 5, tzinfo=UTC)) == "2026年12月7日 14:05"
    assert units.when(None) == "—"


def test_the_beijing_day_of_a_late_utc_evening_is_the_next_day():
    # 17:30 UTC on 6 December is 01:30 on 7 December in Beijing: farmer and bureau agree
    assert units.day("2026-12-06T17:30:00Z") == "2026年12月7日"
    assert units.day("2026-12-06") == "2026年12月6日"  # a stored Beijing day stays itself
    assert units.day(date(2026, 1, 2)) == "2026年1月2日"
    assert units.beijing_date("2026-12-06T17:30:00Z") == date(2026, 12, 7)
    assert units.spreadsheet_time("2026-12-06T17:30:00Z") == datetime(2026, 12, 7, 1, 30)


def test_months_yuan_tonnes_and_percentages():
    assert units.month("2026-03") == "2026年3月"
    assert units.yuan(123456) == "¥1,234.56"
    assert units.yuan(-5) == "-¥0.05"
    assert units.yuan(None) == "¥0.00"
    assert units.yuan_number(1200) == Decimal("12.00")
    assert str(units.yuan_number(1200)) == "12.00"
    assert units.tonnes(1_234_567) == "1.235"
    assert units.tonnes_number(1_234_567) == Decimal("1.234567")
    assert units.percent(0.9523) == "95.2%"
    assert units.percent(None) == "—"


@pytest.mark.parametrize(
    ("role", "name"),
    [
        ("admin", "平台管理员"),
        ("bureau", "县农业农村局"),
        ("enterprise", "企业买家"),
        (None, "访客"),
    ],  # noqa: E501
)
def test_role_names_are_chinese(role, name):
    assert units.role_name(role) == name


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30),
)
def test_largest_remainder_creates_and_loses_nothing(total, weights):
    shares = units.largest_remainder(total, weights)
    assert len(shares) == len(weights)
    if sum(weights):
        assert sum(shares) == total
        for share, weight in zip(shares, weights, strict=True):
            assert abs(share - total * weight / sum(weights)) < 1
    else:
        assert shares == [0] * len(weights)


def test_today_is_the_beijing_calendar_day():
    # 16:30 UTC is half past midnight the next day in Beijing: sales and payouts count it so
    assert units.today(datetime(2026, 12, 6, 16, 30, tzinfo=UTC)) == "2026-12-07"
    assert units.today(datetime(2026, 12, 6, 15, 59, tzinfo=UTC)) == "2026-12-06"


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (5, "0.05"), (10000, "100.00"), (123456, "1234.56"), (-1230, "-12.30")],
)
def test_a_plain_yuan_amount_has_no_currency_sign_nor_separators(fen, text):
    assert units.yuan_plain(fen) == text


def test_an_amount_far_past_a_float_is_still_exact():
    assert units.yuan_plain(2**60 + 1) == "11529215046068469.77"


@given(
    total=st.integers(0, 10**9),
    weights=st.dictionaries(st.integers(1, 10**6), st.integers(0, 10**9), min_size=1),
)
def test_largest_remainder_over_a_mapping_gives_each_key_its_share(total, weights):
    shares = units.largest_remainder(total, weights)
    assert set(shares) == set(weights)
    weight = sum(weights.values())
    assert sum(shares.values()) == (total if weight else 0)
    for key, w in weights.items():
        floor = total * w // weight if weight else 0
        assert shares[key] in (floor, floor + 1)


def test_largest_remainder_ties_go_to_the_lower_key_and_negatives_are_refused():
    assert units.largest_remainder(1, {9: 1, 3: 1}) == {3: 1, 9: 0}
    assert units.largest_remainder(1, [1, 1]) == [1, 0]
    with pytest.raises(ValueError):
        units.largest_remainder(-1, [1])
    with pytest.raises(ValueError):
        units.largest_remainder(1, {1: -1, 2: 2})
