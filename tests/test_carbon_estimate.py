"""Per-tree stock: the LY/T 2264-2014 golden cases, routes, flags, bad input, the parameter set.

Species by species against their sources: tests/test_species_sources.py; uncertainty:
tests/test_species_uncertainty.py."""

import copy
import hashlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.carbon import estimate, method
from server.carbon.estimate import EstimateError, estimate_tree, project_tree

FIR = "cunninghamia_lanceolata"
CAMPHOR = "cinnamomum_camphora"
METHOD = method.load_method()
OLD = method.load_method("sipang-2026.1")
SPECIES = METHOD.species
ACTIVE = sorted(sid for sid, s in SPECIES.items() if s["route"] != "excluded")
EXCLUDED = sorted(sid for sid, s in SPECIES.items() if s["route"] == "excluded")


def close(actual: float, expected: float, share: float = 0.001) -> bool:
    return abs(actual - expected) <= share * abs(expected)


# DESIGN.md §4: D cm, H m → AGB, BGB, C, CO2 in kg (LY/T 2264-2014, Chinese fir).
GOLDEN = [
    (10.347, 12.6, 25.50, 4.488, 14.95, 54.81),  # D ≥ 5 cm branch
    (5.134, 4.787, 3.845, 0.854, 2.340, 8.581),  # D ≥ 5 cm branch, near the switch
    (2.093, 2.2, 0.765, 0.145, 0.453, 1.662),  # D < 5 cm branch
]


@pytest.mark.parametrize(("dbh", "height", "agb", "bgb", "carbon", "co2"), GOLDEN)
def test_golden_cases_reproduce_within_a_tenth_of_a_percent(dbh, height, agb, bgb, carbon, co2):
    tree = estimate_tree(FIR, dbh, height)
    assert tree.route == "species_model"
    assert close(tree.agb_kg, agb)
    assert close(tree.bgb_kg, bgb)
    assert close(tree.carbon_kg, carbon)
    assert isinstance(tree.co2e_g, int)
    assert close(tree.co2e_g / 1000, co2)
    assert tree.co2e_g == estimate.to_grams(tree.carbon_kg * 44 / 12)
    assert tree.method_version == METHOD.version
    assert tree.method_sha256 == METHOD.sha256
    assert tree.inputs == {"dbh_cm": dbh, "height_m": height, "height_source": "measured"}
    old = estimate_tree(FIR, dbh, height, method=OLD)
    assert (old.agb_kg, old.bgb_kg, old.co2e_g) == (tree.agb_kg, tree.bgb_kg, tree.co2e_g)


def test_golden_increment_from_age_18_to_20_is_3_59_kg_a_year():
    age_20 = estimate_tree(FIR, 10.347, 12.6).co2e_g
    age_18 = estimate_tree(FIR, 9.695, 12.467).co2e_g
    assert close((age_20 - age_18) / 2, 3590)


@pytest.mark.parametrize("species_id", ACTIVE)
def test_multi_stem_tree_is_the_sum_of_its_stems(species_id):
    stems = estimate_tree(species_id, height_m=9, stems_cm=[6, 8, 3.5])
    one, two, three = (estimate_tree(species_id, d, 9) for d in (6, 8, 3.5))
    assert stems.agb_kg == pytest.approx(one.agb_kg + two.agb_kg + three.agb_kg, rel=1e-12)
    assert stems.bgb_kg == pytest.approx(one.bgb_kg + two.bgb_kg + three.bgb_kg, rel=1e-12)
    assert stems.carbon_kg == pytest.approx(
        one.carbon_kg + two.carbon_kg + three.carbon_kg, rel=1e-12
    )
    assert stems.co2e_g == estimate.to_grams(stems.carbon_kg * 44 / 12)
    # √Σd² (2026.1) over-states: the sum of the stems is smaller for every species here.
    assert stems.co2e_g < estimate_tree(species_id, estimate.equivalent_dbh([6, 8, 3.5]), 9).co2e_g
    assert stems.inputs["stems_cm"] == [6, 8, 3.5]


def test_old_parameter_set_keeps_root_sum_of_squares_for_multi_stem_trees():
    assert estimate.equivalent_dbh([6, 8]) == 10
    stems = estimate_tree(FIR, height_m=9, stems_cm=[6, 8], method=OLD)
    single = estimate_tree(FIR, 10, 9, method=OLD)
    assert (stems.agb_kg, stems.bgb_kg, stems.carbon_kg, stems.co2e_g) == (
        single.agb_kg,
        single.bgb_kg,
        single.carbon_kg,
        single.co2e_g,
    )
    assert stems.inputs == {
        "dbh_cm": 10,
        "height_m": 9,
        "stems_cm": [6, 8],
        "height_source": "measured",
    }


def test_count_multiplies_the_stock():
    tree = estimate_tree(FIR, 10.347, 12.6, count=40)
    assert tree.count == 40
    assert tree.total_co2e_g == 40 * tree.co2e_g


def test_to_grams_rounds_halves_up_to_an_integer():
    assert estimate.to_grams(0.0015) == 2
    assert estimate.to_grams(2.5e-3) == 3
    assert estimate.to_grams(12.3454) == 12345
    assert isinstance(estimate.to_grams(1.2), int)


# --- monotone in DBH and height, for every species --------------------------------------------


@st.composite
def plausible_shapes(draw, species):
    """A height and two DBHs within the species' limits and its height/DBH window (the shapes
    shape_flags does not flag), the DBHs in order."""
    limits = species["limits"]
    d_low, d_high = limits["dbh_cm"]
    h_low, h_high = limits["height_m"]
    slender_low, slender_high = limits["height_per_dbh_m_per_cm"]
    height = draw(st.floats(h_low, h_high))
    low = max(d_low, height / slender_high)
    high = min(d_high, height / slender_low)
    if low > high:  # no DBH fits this height
        height = h_low
        low, high = max(d_low, height / slender_high), min(d_high, height / slender_low)
    dbhs = sorted(draw(st.lists(st.floats(low, high), min_size=2, max_size=2)))
    return height, dbhs[0], dbhs[1]


@st.composite
def plausible_heights(draw, species):
    """A DBH and two heights, ordered, within the species' limits and height/DBH window."""
    limits = species["limits"]
    slender_low, slender_high = limits["height_per_dbh_m_per_cm"]
    h_low, h_high = limits["height_m"]
    dbh = draw(st.floats(*limits["dbh_cm"]))
    low = max(h_low, dbh * slender_low)
    high = min(h_high, dbh * slender_high)
    if low > high:
        dbh = limits["dbh_cm"][0]
        low, high = max(h_low, dbh * slender_low), min(h_high, dbh * slender_high)
    heights = sorted(draw(st.lists(st.floats(low, high), min_size=2, max_size=2)))
    return dbh, heights[0], heights[1]


@given(
    st.sampled_from(ACTIVE).flatmap(
        lambda sid: st.tuples(st.just(sid), plausible_shapes(SPECIES[sid]))
    )
)
def test_stock_is_positive_and_never_falls_as_dbh_grows(case):
    species_id, (height, small, large) = case
    before = estimate_tree(species_id, small, height)
    after = estimate_tree(species_id, large, height)
    assert before.co2e_g > 0
    assert before.agb_kg > 0 and before.bgb_kg > 0 and before.carbon_kg > 0
    assert after.co2e_g >= before.co2e_g


@given(
    st.sampled_from(ACTIVE).flatmap(
        lambda sid: st.tuples(st.just(sid), plausible_heights(SPECIES[sid]))
    )
)
def test_stock_never_falls_as_height_grows(case):
    species_id, (dbh, low, high) = case
    assert estimate_tree(species_id, dbh, high).co2e_g >= estimate_tree(species_id, dbh, low).co2e_g


def branch_switches(species):
    """The DBHs where a species model changes coefficients (e.g. 5 cm in LY/T 2264)."""
    if species["route"] != "species_model":
        return []
    return sorted({b["dbh_min_cm"] for b in species["agb"] + species["bgb"]} - {0})


SWITCHES = [(sid, d) for sid in ACTIVE for d in branch_switches(SPECIES[sid])]


@pytest.mark.parametrize(("species_id", "switch"), SWITCHES)
@pytest.mark.parametrize("height", [0.5, 1, 2, 5, 10, 15])
def test_stock_does_not_drop_across_the_dbh_branch_switch(species_id, switch, height):
    """The two fitted branches of LY/T 2264 do not meet exactly at 5 cm: just below the switch
    the small-tree branch gives up to a few grams more than the large-tree branch at 5 cm."""
    just_below = math.nextafter(switch, 0)
    for dbh in (just_below, switch - 1e-4, switch - 1e-3):
        below = estimate_tree(species_id, dbh, height)
        at = estimate_tree(species_id, switch, height)
        assert below.carbon_kg <= at.carbon_kg
        assert below.co2e_g <= at.co2e_g


@given(plausible_shapes(SPECIES[FIR]))
def test_fir_golden_branches_are_untouched_away_from_the_switch(shape):
    """The small-tree branch is the standard's own model below the switch (bar its last hair)."""
    height, dbh, _ = shape
    fir = SPECIES[FIR]
    small = next(b for b in fir["agb"] if b["dbh_min_cm"] == 0)
    if dbh < 4.99:
        agb = small["a"] * dbh ** small["b"] * height ** small["c"]
        assert estimate_tree(FIR, dbh, height).agb_kg == agb


# --- routes ------------------------------------------------------------------------------------

VOLUME = {
    "c": 0.0000580963,
    "a": 1.9621,
    "b": 0.89646,
    "wood_density": 0.307,
    "bef": 1.634,
    "root_shoot": 0.246,
    "carbon_fraction": 0.51,
}


def volume_method():
    """The 2026.1 parameter set (fixed uncertainties, no height curve) with camphor switched
    to the volume route."""
    document = copy.deepcopy(OLD.document)
    camphor = next(s for s in document["species"] if s["id"] == CAMPHOR)
    camphor["route"] = "volume_route"
    camphor["volume"] = dict(VOLUME)
    camphor["uncertainty_pct"] = 20
    digest = hashlib.sha256(method.canonical_json(document)).hexdigest()
    return method.Method(document["version"], digest, document)


def test_volume_route_is_volume_times_density_times_bef():
    changed = volume_method()
    dbh, height = 24.0, 14.5
    tree = estimate_tree(CAMPHOR, dbh, height, method=changed)
    v = VOLUME
    agb = v["c"] * dbh ** v["a"] * height ** v["b"] * v["wood_density"] * v["bef"] * 1000
    bgb = agb * v["root_shoot"]
    assert tree.route == "volume_route"
    assert tree.agb_kg == pytest.approx(agb, rel=1e-12)
    assert tree.bgb_kg == pytest.approx(bgb, rel=1e-12)
    assert tree.carbon_kg == pytest.approx((agb + bgb) * v["carbon_fraction"], rel=1e-12)
    assert tree.co2e_g == estimate.to_grams(tree.carbon_kg * 44 / 12)
    assert tree.uncertainty_pct == 20
    assert [f["code"] for f in tree.flags] == []
    assert tree.method_sha256 == changed.sha256 != OLD.sha256


def test_volume_route_needs_height():
    with pytest.raises(EstimateError) as error:
        estimate_tree(CAMPHOR, 24.0, method=volume_method())
    assert [p["field"] for p in error.value.problems] == ["height"]


@given(plausible_shapes(OLD.species[CAMPHOR]), plausible_heights(OLD.species[CAMPHOR]))
def test_volume_route_is_monotone(shape, heights):
    changed = volume_method()
    height, small, large = shape
    assert (
        0
        < estimate_tree(CAMPHOR, small, height, method=changed).co2e_g
        <= estimate_tree(CAMPHOR, large, height, method=changed).co2e_g
    )
    dbh, low, high = heights
    assert (
        estimate_tree(CAMPHOR, dbh, low, method=changed).co2e_g
        <= estimate_tree(CAMPHOR, dbh, high, method=changed).co2e_g
    )


GENERIC = sorted(sid for sid, s in SPECIES.items() if s["route"] == "generic")


@pytest.mark.parametrize("species_id", GENERIC)
def test_generic_species_are_flagged_with_a_larger_uncertainty(species_id):
    tree = estimate_tree(species_id, 20.0)
    generic = [f for f in tree.flags if f["code"] == "generic_route"]
    assert len(generic) == 1
    assert SPECIES[species_id]["name_zh"] in generic[0]["reason"]
    assert f"{tree.uncertainty_pct} %" in generic[0]["reason"]
    equations = [s for s in ACTIVE if SPECIES[s]["route"] != "generic"]
    assert tree.uncertainty_pct > max(
        estimate_tree(s, 20.0, 12.0).uncertainty_pct for s in equations
    )
    assert tree.route == "generic"
    params = SPECIES[species_id]["generic"]
    agb = params["a"] * params["wood_density"] * 20.0 ** params["b"]
    assert tree.agb_kg == pytest.approx(agb, rel=1e-12)
    assert tree.bgb_kg == pytest.approx(agb * params["root_shoot"], rel=1e-12)


@pytest.mark.parametrize("species_id", [s for s in ACTIVE if not estimate.needs_height(SPECIES[s])])
def test_dbh_only_species_do_not_need_height(species_id):
    without = estimate_tree(species_id, 20.0)
    assert without.co2e_g == estimate_tree(species_id, 20.0, 12.0).co2e_g
    assert "height_source" not in without.inputs


def test_fir_species_model_has_no_flags_and_a_computed_uncertainty():
    from server.carbon.uncertainty import stock_u90_pct

    tree = estimate_tree(FIR, 10.347, 12.6)
    assert tree.flags == []
    sizes = {"dbh_cm": 10.347, "height_m": 12.6, "stems_cm": None}
    assert tree.uncertainty_pct == stock_u90_pct(METHOD, FIR, sizes) > 10
    assert estimate_tree(FIR, 10.347, 12.6, method=OLD).uncertainty_pct == 10


@pytest.mark.parametrize("species_id", EXCLUDED)
def test_excluded_species_are_refused_with_the_reason(species_id):
    with pytest.raises(EstimateError) as error:
        estimate_tree(species_id, 10.0, 8.0)
    assert error.value.problems == [
        {"field": "species", "problem": SPECIES[species_id]["excluded_reason"]}
    ]
    with pytest.raises(EstimateError) as projected:
        project_tree(species_id, 5)
    assert projected.value.problems[0]["field"] == "species"


def test_excluded_species_cover_bamboo_and_fruit_trees():
    assert {"phyllostachys_edulis", "citrus_reticulata"} <= set(EXCLUDED)
    assert "bamboo" in SPECIES["phyllostachys_edulis"]["excluded_reason"]
    assert "Fruit" in SPECIES["citrus_reticulata"]["excluded_reason"]


# --- bad input ---------------------------------------------------------------------------------


def range_text(bounds):
    return f"between {bounds[0]} and {bounds[1]}"


def test_unknown_species_is_refused():
    with pytest.raises(EstimateError) as error:
        estimate_tree("quercus_imaginaria", 10.0, 8.0)
    [problem] = error.value.problems
    assert problem["field"] == "species"
    assert "quercus_imaginaria" in problem["problem"]
    assert "/api/v1/species" in problem["problem"]


@pytest.mark.parametrize("dbh", [-1, 0, 0.05, 1e6, float("nan"), float("inf")])
def test_absurd_dbh_is_refused_with_the_range(dbh):
    with pytest.raises(EstimateError) as error:
        estimate_tree(FIR, dbh, 10.0)
    assert error.value.problems == [
        {"field": "dbh", "problem": f"must be {range_text(estimate.DBH_RANGE_CM)} cm"}
    ]


@pytest.mark.parametrize("height", [0, -3, 500, float("nan")])
def test_absurd_height_is_refused_with_the_range(height):
    for species_id in (FIR, CAMPHOR):
        with pytest.raises(EstimateError) as error:
            estimate_tree(species_id, 10.0, height)
        assert error.value.problems == [
            {"field": "height", "problem": f"must be {range_text(estimate.HEIGHT_RANGE_M)} m"}
        ]


def test_fir_without_height_takes_the_height_diameter_curve_and_says_so():
    tree = estimate_tree(FIR, 10.0)
    height = estimate.estimated_height_m(METHOD, FIR, 10.0)
    model = SPECIES[FIR]["height_model"]
    assert height == pytest.approx(
        1.3 + (model["h_max_m"] - 1.3) * (1 - math.exp(-model["rate"] * 10.0)), rel=1e-12
    )
    assert tree.inputs == {"dbh_cm": 10.0, "height_m": height, "height_source": "estimated"}
    assert tree.co2e_g == estimate_tree(FIR, 10.0, height).co2e_g
    # The curve's error (RMSE) is larger than a clinometer's: a larger uncertainty.
    assert tree.uncertainty_pct > estimate_tree(FIR, 10.0, height).uncertainty_pct


def test_missing_height_for_fir_under_the_old_set_names_height_and_its_range():
    with pytest.raises(EstimateError) as error:
        estimate_tree(FIR, 10.0, method=OLD)
    [problem] = error.value.problems
    assert problem["field"] == "height"
    low, high = estimate.HEIGHT_RANGE_M
    assert f"{low}–{high}" in problem["problem"]
    assert "杉木" in problem["problem"]


def test_missing_dbh_is_refused():
    with pytest.raises(EstimateError) as error:
        estimate_tree(FIR, None, 10.0)
    assert [p["field"] for p in error.value.problems] == ["dbh"]


def test_bad_stem_is_named_by_its_index():
    with pytest.raises(EstimateError) as error:
        estimate_tree(FIR, height_m=10.0, stems_cm=[6, -2])
    assert error.value.problems == [
        {"field": "stems_cm/1", "problem": f"must be {range_text(estimate.DBH_RANGE_CM)} cm"}
    ]


@pytest.mark.parametrize("count", [0, -5, 10_000_001])
def test_bad_count_is_refused(count):
    with pytest.raises(EstimateError) as error:
        estimate_tree(FIR, 10.0, 10.0, count=count)
    assert error.value.problems == [
        {"field": "count", "problem": f"must be {range_text(estimate.COUNT_RANGE)} trees"}
    ]
    with pytest.raises(EstimateError) as projected:
        project_tree(CAMPHOR, 3, count=count)
    assert projected.value.problems[0]["field"] == "count"


def test_every_problem_is_reported_at_once():
    with pytest.raises(EstimateError) as error:
        estimate_tree(FIR, -1, 500, count=0)
    assert [p["field"] for p in error.value.problems] == ["dbh", "height", "count"]
    assert "dbh: must be between" in str(error.value)


@pytest.mark.parametrize("age", [0, -1, 1000])
def test_absurd_age_is_refused_with_the_range(age):
    with pytest.raises(EstimateError) as error:
        project_tree(CAMPHOR, age)
    assert error.value.problems == [
        {"field": "age", "problem": f"must be {range_text(estimate.AGE_RANGE)} years"}
    ]


def test_unknown_species_projection_is_refused():
    with pytest.raises(EstimateError) as error:
        project_tree("nope", 3)
    assert error.value.problems[0]["field"] == "species"


# --- the parameter set -------------------------------------------------------------------------


def numbers_used(species):
    """The `sources` keys a species row must carry for the numbers its route uses."""
    route = species["route"]
    if route == "excluded":
        return {"excluded_reason"}
    keys = {"limits", "growth_ceiling", "projection"}
    if "model_error" in species:
        keys |= {"model_error.sigma_ln", "fitted_range", "height_model"}
    else:
        keys.add("uncertainty_pct")
    if route == "species_model":
        keys |= {"agb", "bgb", "carbon_fraction_above", "carbon_fraction_below"}
    else:
        block = {"volume_route": "volume", "generic": "generic", "species_equation": "equation"}
        keys |= {f"{block[route]}.{name}" for name in species[block[route]]}
    return keys


@pytest.mark.parametrize(
    ("version", "species_id"),
    [(m.version, sid) for m in (OLD, METHOD) for sid in sorted(m.species)],
)
def test_every_number_names_its_source(version, species_id):
    species = method.load_method(version).species[species_id]
    sources = species["sources"]
    missing = numbers_used(species) - set(sources)
    assert not missing, f"{species_id} has no source for {sorted(missing)}"
    for key in numbers_used(species):
        assert isinstance(sources[key], str) and len(sources[key].strip()) > 5
    assert species["scientific_name"] and species["name_zh"]
    assert isinstance(species["local_names"], list)


def test_volume_route_rows_would_need_volume_sources():
    camphor = volume_method().species[CAMPHOR]
    assert {f"volume.{key}" for key in VOLUME} <= numbers_used(camphor)
    assert not {f"volume.{key}" for key in VOLUME} <= set(camphor["sources"])


def test_crediting_parameters_name_their_sources():
    crediting = METHOD.crediting
    for key in ("uncertainty_threshold_pct", "default_buffer_pct"):
        assert isinstance(crediting[key], int)
        assert crediting["sources"][key]


def test_parameter_set_shape():
    assert METHOD.version == method.CURRENT_VERSION == METHOD.document["version"]
    assert METHOD.version in method.available_versions()
    ids = [s["id"] for s in METHOD.document["species"]]
    assert len(ids) == len(set(ids))
    for species in METHOD.document["species"]:
        assert species["route"] in method.ROUTES
        if species["route"] == "species_model":
            for part in ("agb", "bgb"):
                minimums = [b["dbh_min_cm"] for b in species[part]]
                assert minimums == sorted(minimums, reverse=True) and minimums[-1] == 0


def test_method_hash_is_sha256_of_canonical_json():
    expected = hashlib.sha256(method.canonical_json(METHOD.document)).hexdigest()
    assert METHOD.sha256 == expected
    assert method.canonical_json({"b": 1, "a": "樟"}) == '{"a":"樟","b":1}'.encode()


def numeric_leaves(node, path=()):
    if isinstance(node, bool):
        return
    if isinstance(node, int | float):
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from numeric_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from numeric_leaves(value, (*path, index))


def test_method_hash_changes_when_any_number_changes():
    paths = list(numeric_leaves(METHOD.document))
    assert len(paths) > 100
    for path in paths:
        document = copy.deepcopy(METHOD.document)
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = node[path[-1]] * 1.0001 + 1e-9
        digest = hashlib.sha256(method.canonical_json(document)).hexdigest()
        assert digest != METHOD.sha256, path


# --- projections -------------------------------------------------------------------------------


def test_seeds_camphor_calculator_is_a_labelled_projection_far_below_15_t():
    answer = project_tree(CAMPHOR, 3, count=1000)
    assert answer.projection is True
    assert [f["code"] for f in answer.flags] == ["projection"]
    assert "never issued" in answer.flags[0]["reason"]
    assert answer.annual_co2e_g > 0
    assert answer.total_annual_co2e_g == 1000 * answer.annual_co2e_g
    assert answer.total_co2e_g == 1000 * answer.co2e_g
    assert answer.total_annual_co2e_g < 15_000_000 / 3
    assert answer.inputs["age"] == 3


def test_fir_projection_at_20_years_gives_the_golden_tree():
    answer = project_tree(FIR, 20)
    assert close(answer.inputs["projected_dbh_cm"], 10.347)
    assert close(answer.inputs["projected_height_m"], 12.6)
    assert close(answer.co2e_g / 1000, 54.81)
    assert close(answer.annual_co2e_g, 3590, share=0.02)
    assert answer.projection is True


@given(st.sampled_from(ACTIVE), st.integers(*estimate.AGE_RANGE))
def test_projection_grows_with_age(species_id, age):
    answer = project_tree(species_id, age)
    assert answer.co2e_g > 0
    assert answer.annual_co2e_g >= 0
    assert answer.projection is True
    if age > 1:
        assert project_tree(species_id, age - 1).co2e_g <= answer.co2e_g


def test_first_year_projection_counts_the_whole_stock():
    answer = project_tree(FIR, 1)
    assert answer.annual_co2e_g == answer.co2e_g > 0
