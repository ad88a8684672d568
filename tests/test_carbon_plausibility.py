"""Plausibility checks ("red code"): growth judged against the anchor and relative to size,
height, the DBH–height envelope, the same tree twice within GPS accuracy, location, photo
and dates. The seeds' figures are caught; honest growth is not."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.carbon import rules
from server.carbon.estimate import estimate_tree, shape_flags
from server.carbon.method import load_method
from server.carbon.plausibility import (
    allowed_dbh_growth_cm,
    dbh_noise_cm,
    distance_m,
    duplicate_flags,
    growth_flags,
    location_flags,
    photo_flags,
    record_flags,
    size_flags,
)

FIR = "cunninghamia_lanceolata"
CAMPHOR = "cinnamomum_camphora"
SPECIES = load_method().species
LAST_YEAR = "2025-05-01T09:00:00+08:00"
THIS_YEAR = "2026-05-01T09:00:00+08:00"
VILLAGE = {"name": "长水村", "latitude": 29.26, "longitude": 115.1}
METRES_PER_DEGREE_LAT = 6_371_000 * math.pi / 180


def reading(dbh, height=None, when=THIS_YEAR):
    return {"dbh_cm": dbh, "height_m": height, "client_time": when}


def remeasure(species_id, before, after, *, when=(LAST_YEAR, THIS_YEAR), previous=None):
    """growth_flags for a tree anchored at `before` and measured at `after` ((dbh, height))."""
    start = estimate_tree(species_id, *before).co2e_g
    end = estimate_tree(species_id, *after).co2e_g
    anchor, current = reading(*before, when=when[0]), reading(*after, when=when[1])
    return growth_flags(SPECIES[species_id], anchor, current, start, end, previous), end - start


def test_normal_fir_growth_is_not_flagged():
    flags, gain = remeasure(FIR, (10, 11), (10.8, 11.5))
    assert flags == []
    assert 0 < gain < 100_000


def test_normal_camphor_growth_is_not_flagged():
    flags, _ = remeasure(CAMPHOR, (12, 8), (13.5, 8.5))
    assert flags == []


def test_growth_is_judged_relative_to_size():
    """A 5 cm camphor may add 1.2 cm a year (a young tree's allowance), a 12 cm one 15 % of
    its DBH (1.8 cm), a 20 cm one no more than the species' 2.5 cm ceiling."""

    def per_year(dbh):
        return allowed_dbh_growth_cm(SPECIES[CAMPHOR], dbh, 1.0) - dbh_noise_cm(dbh)

    assert per_year(5.0) == pytest.approx(rules.SMALL_TREE_DBH_CM_PER_YEAR)
    assert per_year(12.0) == pytest.approx(12.0 * rules.RELATIVE_DBH_GROWTH_PER_YEAR["broadleaf"])
    assert per_year(20.0) == pytest.approx(SPECIES[CAMPHOR]["growth_ceiling"]["dbh_cm_per_year"])


def test_the_seeds_3_year_camphor_adding_15_kg_a_year_is_flagged():
    """'camphor, 3 years, 1000 trees → 15 t a year', for a transplant starting at 5 cm."""
    start = estimate_tree(CAMPHOR, 5.0, 3.0).co2e_g
    dbh = 5.0
    while estimate_tree(CAMPHOR, dbh, 3.8).co2e_g - start < 15_000:
        dbh += 0.01
    flags, _ = remeasure(CAMPHOR, (5.0, 3.0), (dbh, 3.8))
    assert "growth_above_ceiling" in [f["code"] for f in flags]
    assert all("樟树" in f["reason"] for f in flags if f["code"] == "growth_above_ceiling")


def test_the_seeds_fir_370_kg_a_year_is_flagged():
    flags, gain = remeasure(FIR, (30, 20), (34, 21))
    assert gain < 370_000  # even 4 cm on a 30 cm fir is far below the seeds' figure
    flags, _ = remeasure(FIR, (30, 20), (45, 21))
    assert "growth_above_ceiling" in [f["code"] for f in flags]


def test_many_small_steps_add_up_against_the_anchor():
    """Ten daily +0.5 cm readings: each is small beside its predecessor, not beside the anchor."""
    day = 1 / 365.25
    anchor = reading(10.0, None, "2026-05-01T09:00:00Z")
    flagged = []
    for n in range(1, 11):
        when = f"2026-05-{1 + n:02d}T09:00:00Z"
        current = reading(10.0 + 0.5 * n, None, when)
        flags = growth_flags(SPECIES[CAMPHOR], anchor, current, 0, 0)
        flagged.append(bool(flags))
    assert flagged[0] is False and all(flagged[1:])
    assert allowed_dbh_growth_cm(SPECIES[CAMPHOR], 10.0, 10 * day) < 1.0


def test_a_height_jump_is_flagged():
    flags, _ = remeasure(FIR, (20, 12), (21, 27))
    assert [f["code"] for f in flags if f["code"] == "height_jump"] == ["height_jump"]
    assert "12 米增至 27 米" in next(f["reason"] for f in flags if f["code"] == "height_jump")


@pytest.mark.parametrize(
    ("before", "after", "shrinking"),
    [
        (10.0, 9.4, False),  # 0.5 cm + 1 % of 10 cm = 0.6 cm: the tape's error
        (10.0, 9.3, True),
        (30.0, 29.2, False),
        (30.0, 29.1, True),
        (10.0, 10.0, False),
    ],
)
def test_shrinking_dbh_beyond_the_tape_error_is_flagged(before, after, shrinking):
    flags, _ = remeasure(FIR, (before, 10), (after, 10))
    codes = [f["code"] for f in flags]
    assert ("dbh_shrinking" in codes) is shrinking
    if shrinking:
        assert (
            f"胸径从 {before:g} 厘米降到 {after:g} 厘米"
            in flags[codes.index("dbh_shrinking")]["reason"]
        )


@given(
    st.floats(1, 120),
    st.floats(0, 1),
    st.sampled_from(sorted(s for s in SPECIES if SPECIES[s]["route"] != "excluded")),
)
def test_dbh_within_the_tape_error_is_never_shrinking(before, share, species_id):
    after = before - share * dbh_noise_cm(before)
    anchor, current = reading(before, None, LAST_YEAR), reading(after, None, THIS_YEAR)
    assert growth_flags(SPECIES[species_id], anchor, current, 0, 0) == []


@pytest.mark.parametrize(
    ("dbh", "height", "flagged"),
    [(15, 12, False), (47.1, 12, True), (40, 11, True), (30, 12, False), (2, 20, True)],
)
def test_a_girth_typed_as_a_diameter_leaves_the_envelope(dbh, height, flagged):
    flags = size_flags(SPECIES[FIR], reading(dbh, height), None)
    assert ("size_envelope" in [f["code"] for f in flags]) is flagged


def test_a_tree_too_large_for_its_planting_year_is_flagged():
    flags = size_flags(SPECIES[CAMPHOR], reading(15.0, 6.0), 2024)
    assert [f["code"] for f in flags] == ["too_large_for_age"]
    assert size_flags(SPECIES[CAMPHOR], reading(5.0, 3.0), 2024) == []


def point(metres_north, metres_east=0.0, **fields):
    """A place `metres_north` / `metres_east` of the village centre."""
    east = metres_east / (METRES_PER_DEGREE_LAT * math.cos(math.radians(VILLAGE["latitude"])))
    return {
        "latitude": VILLAGE["latitude"] + metres_north / METRES_PER_DEGREE_LAT,
        "longitude": VILLAGE["longitude"] + east,
        **fields,
    }


def test_distance_is_in_metres():
    assert distance_m(29.26, 115.1, point(100)["latitude"], 115.1) == pytest.approx(100)
    east = point(0, 250)
    assert distance_m(29.26, 115.1, east["latitude"], east["longitude"]) == pytest.approx(250)


def tree_at(gap, accuracy, species="cunninghamia_lanceolata", household=1, dbh=20.0):
    return point(
        gap,
        dbh_cm=dbh,
        tree_id="0190f0a0-0000-7000-8000-000000000001",
        species_id=species,
        species_name="杉木",
        household_id=household,
        gps_accuracy_m=accuracy,
    )


@pytest.mark.parametrize(
    ("gap", "accuracy", "flagged"),
    [(3, 2, True), (4.5, 2, False), (9, 5, True), (11, 5, False), (14, 30, True), (16, 30, False)],
)
def test_the_same_tree_twice_is_searched_within_the_combined_gps_accuracy(gap, accuracy, flagged):
    here = point(0, species_id=FIR, household_id=1, gps_accuracy_m=accuracy, dbh_cm=20.5)
    flags = duplicate_flags(here, [tree_at(gap, accuracy, household=2)])
    assert bool(flags) is flagged
    if flagged:
        assert "另一户" in flags[0]["reason"] and "0190f0a0" in flags[0]["reason"]


def test_another_species_at_the_same_spot_is_flagged_closer_in():
    here = point(0, species_id=CAMPHOR, household_id=1, gps_accuracy_m=4, dbh_cm=20.0)
    assert duplicate_flags(here, [tree_at(3, 4)]) != []
    assert duplicate_flags(here, [tree_at(6, 4)]) == []


def test_a_neighbour_of_another_size_is_another_tree():
    here = point(0, species_id=FIR, household_id=1, gps_accuracy_m=8, dbh_cm=20.0)
    assert duplicate_flags(here, [tree_at(2, 8, dbh=21.9)]) != []
    assert duplicate_flags(here, [tree_at(2, 8, dbh=22.1)]) == []


def test_gps_missing_is_flagged_and_far_away_too():
    assert [f["code"] for f in location_flags({"latitude": None}, VILLAGE)] == ["gps_missing"]
    far = location_flags(point(3_100), VILLAGE)
    assert [f["code"] for f in far] == ["gps_outside_village"]
    assert location_flags(point(2_900), VILLAGE) == []


SERVER_TIME = "2026-05-01T10:00:00Z"
PHOTO = "ab" * 32


def test_missing_photo_is_flagged():
    flags = record_flags({"client_time": SERVER_TIME}, SERVER_TIME)
    assert flags == [{"code": "photo_missing", "reason": "没有拍树的照片"}]


def test_client_clock_ten_minutes_ahead_is_clock_skew():
    current = {"client_time": "2026-05-01T10:10:00Z", "photo_sha256": PHOTO}
    assert [f["code"] for f in record_flags(current, SERVER_TIME)] == ["clock_skew"]


def test_a_reading_a_week_old_is_fine_and_two_months_old_waits_for_review():
    week = {"client_time": "2026-04-24T10:00:00Z", "photo_sha256": PHOTO}
    assert record_flags(week, SERVER_TIME) == []
    months = {"client_time": "2026-03-01T10:00:00Z", "photo_sha256": PHOTO}
    assert [f["code"] for f in record_flags(months, SERVER_TIME)] == ["late_reading"]


def test_a_photo_used_twice_is_flagged_once_per_kind():
    other = [{"tree_id": "0190f0a0-0000-7000-8000-000000000009"}]
    assert [f["code"] for f in photo_flags(other, [])] == ["photo_reused"]
    assert [f["code"] for f in photo_flags(other, other)] == ["photo_reused", "photo_reused"]
    assert photo_flags([], []) == []


def test_the_reasons_a_reviewer_reads_are_chinese():
    """The admin's review screen and the measurer's phone show a flag's reason as written."""
    fir = SPECIES[FIR]
    low, high = fir["limits"]["dbh_cm"]
    odd = shape_flags(fir, high + 10, fir["limits"]["height_m"][1] + 5) + shape_flags(fir, 30, 2)
    assert [flag["code"] for flag in odd] == [
        "dbh_implausible",
        "height_implausible",
        "shape_implausible",
    ]
    assert odd[0]["reason"] == f"胸径 {high + 10:g} 厘米超出杉木的范围 {low}–{high} 厘米"
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in flag["reason"]) for flag in odd), odd
    assert all(not any(word in flag["reason"] for word in ("DBH", "height", " cm")) for flag in odd)
