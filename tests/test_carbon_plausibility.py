"""Plausibility checks ("red code"): the seeds' figures are caught, honest growth is not."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.carbon import plausibility
from server.carbon.estimate import estimate_tree
from server.carbon.method import load_method
from server.carbon.plausibility import (
    distance_m,
    duplicate_flags,
    growth_flags,
    location_flags,
    record_flags,
)

FIR = "cunninghamia_lanceolata"
CAMPHOR = "cinnamomum_camphora"
SPECIES = load_method().species
LAST_YEAR = "2025-05-01T09:00:00+08:00"
THIS_YEAR = "2026-05-01T09:00:00+08:00"
VILLAGE = {"name": "长水村", "latitude": 29.26, "longitude": 115.1}
METRES_PER_DEGREE_LAT = 6_371_000 * math.pi / 180


def dbh_for_gain(species_id, dbh, height, gain_g, new_height=None):
    """The smallest DBH (to a micrometre) whose stock is `gain_g` above the tree at `dbh`."""
    start = estimate_tree(species_id, dbh, height).co2e_g
    low, high = dbh, 300.0
    while high - low > 1e-4:
        middle = (low + high) / 2
        if estimate_tree(species_id, middle, new_height or height).co2e_g - start >= gain_g:
            high = middle
        else:
            low = middle
    return high


def remeasure(species_id, before, after, *, when=(LAST_YEAR, THIS_YEAR)):
    """growth_flags for a tree measured at `before` and `after` ((dbh, height) pairs)."""
    first = estimate_tree(species_id, *before).co2e_g
    second = estimate_tree(species_id, *after).co2e_g
    previous = {"dbh_cm": before[0], "client_time": when[0]}
    current = {"dbh_cm": after[0], "client_time": when[1]}
    return growth_flags(SPECIES[species_id], previous, current, first, second), second - first


def test_seeds_camphor_15_kg_a_year_is_above_the_ceiling():
    """'camphor, 3 years → 15 kg a year': a 3-year camphor (DBH 3.5 cm, its projected size)
    re-measured a year later at whatever DBH adds 15 kg CO2e."""
    dbh = dbh_for_gain(CAMPHOR, 3.5, None, 15_000)
    flags, gain = remeasure(CAMPHOR, (3.5, None), (dbh, None))
    assert 15_000 <= gain < 15_100
    ceiling = [f for f in flags if f["code"] == "growth_above_ceiling"]
    assert ceiling, flags
    assert all("樟树" in f["reason"] for f in ceiling)


def test_seeds_fir_370_kg_a_year_is_above_the_ceiling():
    """'0.37 t per fir per year', for a 30 cm fir growing a metre taller."""
    dbh = dbh_for_gain(FIR, 30, 20, 370_000, new_height=21)
    flags, gain = remeasure(FIR, (30, 20), (dbh, 21))
    assert 370_000 <= gain < 371_000
    reasons = [f["reason"] for f in flags if f["code"] == "growth_above_ceiling"]
    assert any("kg CO2e a year is above the 100 kg ceiling for one 杉木" in r for r in reasons)
    assert all("杉木" in r for r in reasons)


def test_fir_370_kg_a_year_is_caught_even_when_dbh_growth_looks_normal():
    """A very large fir can add 370 kg with 2 cm of DBH: the CO2e ceiling catches it."""
    dbh = dbh_for_gain(FIR, 85, 32, 370_000, new_height=32.5)
    assert dbh - 85 <= SPECIES[FIR]["growth_ceiling"]["dbh_cm_per_year"]
    flags, _ = remeasure(FIR, (85, 32), (dbh, 32.5))
    assert [f["code"] for f in flags] == ["growth_above_ceiling"]
    assert "kg CO2e a year is above the 100 kg ceiling for one 杉木" in flags[0]["reason"]


def test_normal_fir_growth_is_not_flagged():
    flags, gain = remeasure(FIR, (10, 11), (10.8, 11.5))
    assert flags == []
    assert 0 < gain < 100_000


def test_normal_camphor_growth_is_not_flagged():
    flags, _ = remeasure(CAMPHOR, (12, None), (13.5, None))
    assert flags == []


def test_dbh_growth_above_the_ceiling_is_flagged_with_the_reason():
    flags, _ = remeasure(FIR, (10, 11), (14, 12))
    assert flags[0] == {
        "code": "growth_above_ceiling",
        "reason": "DBH grew 4.0 cm in 1.00 years; 杉木 grows at most 2.0 cm a year",
    }


def test_growth_over_a_short_interval_is_judged_per_year():
    """25 kg in a month is 300 kg a year: above the fir's 100 kg ceiling."""
    month = ("2026-04-01T09:00:00+08:00", "2026-05-01T09:00:00+08:00")
    previous = {"dbh_cm": 60.0, "client_time": month[0]}
    current = {"dbh_cm": 60.2, "client_time": month[1]}
    flags = growth_flags(SPECIES[FIR], previous, current, 1_000_000, 1_025_000)
    assert [f["code"] for f in flags] == ["growth_above_ceiling"]
    assert "杉木" in flags[0]["reason"]


@pytest.mark.parametrize(
    ("before", "after", "shrinking"),
    [
        (10.0, 9.5, False),  # 0.5 cm: the tolerance
        (10.0, 9.4, True),
        (30.0, 29.1, False),  # 3 % of 30 cm = 0.9 cm
        (30.0, 29.0, True),
        (10.0, 10.0, False),
        (5.0, 5.3, False),
    ],
)
def test_shrinking_dbh_beyond_the_tolerance_is_flagged(before, after, shrinking):
    flags, _ = remeasure(FIR, (before, 10), (after, 10))
    codes = [f["code"] for f in flags]
    assert ("dbh_shrinking" in codes) is shrinking
    if shrinking:
        reason = flags[codes.index("dbh_shrinking")]["reason"]
        assert f"DBH fell from {before:g} to {after:g} cm" in reason


@given(
    st.floats(1, 120),
    st.floats(0, 1),
    st.sampled_from(sorted(s for s in SPECIES if SPECIES[s]["route"] != "excluded")),
)
def test_dbh_within_the_measurement_tolerance_is_never_shrinking(before, share, species_id):
    tolerance = max(plausibility.DBH_TOLERANCE_CM, plausibility.DBH_TOLERANCE_SHARE * before)
    after = before - share * tolerance
    previous = {"dbh_cm": before, "client_time": LAST_YEAR}
    current = {"dbh_cm": after, "client_time": THIS_YEAR}
    assert growth_flags(SPECIES[species_id], previous, current, 0, 0) == []


def point(metres_north, metres_east=0.0, **fields):
    """A place `metres_north` / `metres_east` of the village centre."""
    east = metres_east / (METRES_PER_DEGREE_LAT * math.cos(math.radians(VILLAGE["latitude"])))
    return {
        "latitude": VILLAGE["latitude"] + metres_north / METRES_PER_DEGREE_LAT,
        "longitude": VILLAGE["longitude"] + east,
        **fields,
    }


def test_distance_is_in_metres():
    here = point(0)
    assert distance_m(
        **dict(zip(("lat1", "lon1"), here.values(), strict=True)),
        lat2=point(100)["latitude"],
        lon2=here["longitude"],
    ) == pytest.approx(100)
    assert distance_m(29.26, 115.1, 29.26, 115.1) == 0
    east = point(0, 250)
    assert distance_m(29.26, 115.1, east["latitude"], east["longitude"]) == pytest.approx(250)


NEIGHBOUR = {"tree_id": "0190f0a0-0000-7000-8000-000000000001", "species_name": "杉木"}


@pytest.mark.parametrize(("gap", "flagged"), [(0, True), (4, True), (4.9, True), (6, False)])
def test_the_same_tree_twice_is_flagged_within_5_m(gap, flagged):
    flags = duplicate_flags(point(0), [point(100), point(gap, **NEIGHBOUR)])
    if flagged:
        assert [f["code"] for f in flags] == ["possible_duplicate"]
        assert f"another 杉木 of this household stands {gap:.1f} m away" in flags[0]["reason"]
        assert "0190f0a0" in flags[0]["reason"]
    else:
        assert flags == []


def test_duplicates_need_positions():
    assert duplicate_flags({"latitude": None, "longitude": None}, [point(0, **NEIGHBOUR)]) == []
    other = {"latitude": None, "longitude": None, **NEIGHBOUR}
    assert duplicate_flags(point(0), [other]) == []


@pytest.mark.parametrize(
    ("north", "east", "flagged"),
    [
        (0, 0, False),
        (2_900, 0, False),
        (0, 2_900, False),
        (3_100, 0, True),
        (0, -5_000, True),
        (-200_000, 0, True),
    ],
)
def test_gps_outside_the_village_is_flagged(north, east, flagged):
    flags = location_flags(point(north, east), VILLAGE)
    if flagged:
        assert [f["code"] for f in flags] == ["gps_outside_village"]
        assert "长水村" in flags[0]["reason"] and "limit 3 km" in flags[0]["reason"]
    else:
        assert flags == []


def test_location_needs_positions():
    assert location_flags({"latitude": None}, VILLAGE) == []
    assert location_flags(point(10_000), {"name": "西山村", "latitude": None}) == []


SERVER_TIME = "2026-05-01T10:00:00Z"
PHOTO = "ab" * 32


def test_missing_photo_is_flagged():
    flags = record_flags({"client_time": SERVER_TIME}, SERVER_TIME)
    assert flags == [{"code": "photo_missing", "reason": "no photo of the tree was taken"}]
    assert record_flags({"client_time": SERVER_TIME, "photo_sha256": ""}, SERVER_TIME) == flags


def test_client_clock_ten_minutes_ahead_is_clock_skew():
    current = {"client_time": "2026-05-01T10:10:00Z", "photo_sha256": PHOTO}
    flags = record_flags(current, SERVER_TIME)
    assert flags == [
        {"code": "clock_skew", "reason": "the phone's clock was +10 minutes off the server's"}
    ]


def test_client_clock_in_another_timezone_is_not_skew():
    current = {"client_time": "2026-05-01T18:04:00+08:00", "photo_sha256": PHOTO}
    assert record_flags(current, SERVER_TIME) == []


def test_records_synced_days_later_are_not_clock_skew():
    current = {"client_time": "2026-04-24T10:00:00Z", "photo_sha256": PHOTO}
    assert record_flags(current, SERVER_TIME) == []


@pytest.mark.parametrize(
    ("offset", "flagged"), [(-400, True), (400, True), (60, False), (-300, False), (0, False)]
)
def test_measured_clock_offset_beyond_5_minutes_is_clock_skew(offset, flagged):
    current = {"client_time": "2026-05-01T10:10:00Z", "photo_sha256": PHOTO}
    flags = record_flags(current, SERVER_TIME, clock_offset_s=offset)
    assert [f["code"] for f in flags] == (["clock_skew"] if flagged else [])
    if offset == -400:
        assert flags[0]["reason"] == "the phone's clock was -7 minutes off the server's"


def test_measurement_noise_over_a_short_interval_is_not_growth_above_the_ceiling():
    """A verifier re-measuring a week later may read 0.5 cm more: that is noise, not growth."""
    week = ("2026-04-24T09:00:00+08:00", "2026-05-01T09:00:00+08:00")
    flags, _ = remeasure(FIR, (10, 11), (10.5, 11), when=week)
    assert flags == []


def test_the_measurement_tolerance_does_not_raise_a_year_long_ceiling():
    """Camphor grows at most 2.5 cm a year: 2.7 cm is above it, tolerance or not."""
    flags, _ = remeasure(CAMPHOR, (3.5, None), (6.2, None))
    assert [f["code"] for f in flags] == ["growth_above_ceiling"]
    assert flags[0]["reason"] == "DBH grew 2.7 cm in 1.00 years; 樟树 grows at most 2.5 cm a year"
