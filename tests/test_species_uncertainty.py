"""Uncertainty computed, not assumed: server/carbon/uncertainty.py against closed forms worked
out here by hand, a seeded Monte Carlo, and the rules crediting relies on."""

import math
import random

import pytest

from server.carbon import uncertainty
from server.carbon.estimate import estimate_tree
from server.carbon.method import load_method

METHOD = load_method("sipang-2026.2")
POPLAR, FIR, ELM = "populus_spp", "cunninghamia_lanceolata", "ulmus_spp"
Z90 = 1.6448536269514722


def sizes(dbh, height=None, stems=None):
    return {"dbh_cm": dbh, "height_m": height, "stems_cm": stems}


def poplar_constants():
    """C = k·D^b for the poplar equation (one power term, no height)."""
    species = METHOD.species[POPLAR]
    term = species["equation"]["agb_terms"][0]
    k = term["a"] * (1 + species["equation"]["root_shoot"]) * 0.47
    return k, term["b"], species["model_error"]["sigma_ln"]


def dbh_sd(dbh):
    return (0.5 + 0.01 * dbh) / Z90  # ±0.5 cm + 1 % as a 90 % bound


@pytest.mark.parametrize("dbh", [8.0, 12.5, 20.0, 30.6])
def test_stock_u90_of_a_power_law_is_the_closed_form(dbh):
    # U90 = Z·√(σ² + (b·σ_D / D)²): the model's relative error and the slope times the tape's.
    _, b, sigma = poplar_constants()
    expected = math.ceil(100 * Z90 * math.sqrt(sigma**2 + (b * dbh_sd(dbh) / dbh) ** 2))
    assert uncertainty.stock_u90_pct(METHOD, POPLAR, sizes(dbh)) == expected
    assert estimate_tree(POPLAR, dbh).uncertainty_pct == expected


@pytest.mark.parametrize(("start", "end"), [(10.0, 11.0), (10.0, 14.0), (20.0, 20.8)])
def test_period_u90_of_a_power_law_is_the_closed_form(start, end):
    k, b, sigma = poplar_constants()
    c1, c2 = k * start**b, k * end**b
    change = c2 - c1
    measurement = (b * c1 / start * dbh_sd(start)) ** 2 + (b * c2 / end * dbh_sd(end)) ** 2
    expected = math.ceil(100 * Z90 * math.sqrt((sigma * change) ** 2 + measurement) / change)
    assert uncertainty.period_u90_pct(METHOD, POPLAR, sizes(start), sizes(end)) == expected


def test_the_closed_form_agrees_with_a_seeded_monte_carlo():
    """Draw the tree's own deviation from the equation (one per tree, kept at both ends) and
    independent tape errors at each end; the 90 % half-width of the simulated change is the
    analytic one within a few percent."""
    k, b, sigma = poplar_constants()
    start, end = 15.0, 17.0
    rng = random.Random(20261207)
    changes = []
    for _ in range(40_000):
        deviation = rng.gauss(0, sigma)
        d1 = start + rng.gauss(0, dbh_sd(start))
        d2 = end + rng.gauss(0, dbh_sd(end))
        changes.append((1 + deviation) * (k * d2**b - k * d1**b))
    changes.sort()
    true_change = k * end**b - k * start**b
    half_width = (changes[int(0.95 * len(changes))] - changes[int(0.05 * len(changes))]) / 2
    simulated = 100 * half_width / true_change
    analytic = uncertainty.period_u90_pct(METHOD, POPLAR, sizes(start), sizes(end))
    assert simulated == pytest.approx(analytic, rel=0.05)


def test_a_small_growth_is_less_certain_than_a_large_one():
    small = uncertainty.period_u90_pct(METHOD, POPLAR, sizes(15.0), sizes(15.5))
    large = uncertainty.period_u90_pct(METHOD, POPLAR, sizes(15.0), sizes(19.0))
    floor = math.ceil(100 * Z90 * METHOD.species[POPLAR]["model_error"]["sigma_ln"])
    assert small > large >= floor


def test_outside_the_fitted_range_the_model_error_grows():
    inside = uncertainty.stock_u90_pct(METHOD, POPLAR, sizes(30.0))
    outside = uncertainty.stock_u90_pct(METHOD, POPLAR, sizes(61.2))  # twice the edge
    _, b, sigma = poplar_constants()
    expected = math.ceil(100 * Z90 * math.sqrt((2 * sigma) ** 2 + (b * dbh_sd(61.2) / 61.2) ** 2))
    assert outside == expected > inside
    grown = uncertainty.period_u90_pct(METHOD, POPLAR, sizes(29.0), sizes(33.0))
    assert grown > uncertainty.period_u90_pct(METHOD, POPLAR, sizes(25.0), sizes(29.0))


def test_height_noise_never_becomes_growth_when_height_is_estimated():
    # No DBH growth and no measured height: the same curve at both ends, no change at all.
    parts = uncertainty.period_parts(METHOD, FIR, sizes(12.0), sizes(12.0))
    assert parts["change"] == 0
    # Measured heights that differ by a clinometer's noise would make "growth" from nothing.
    noisy = uncertainty.period_parts(METHOD, FIR, sizes(12.0, 10.0), sizes(12.0, 10.6))
    assert noisy["change"] > 0


def test_an_estimated_height_is_less_certain_than_a_measured_one():
    estimated = uncertainty.stock_u90_pct(METHOD, FIR, sizes(12.0))
    measured = uncertainty.stock_u90_pct(METHOD, FIR, sizes(12.0, 11.0))
    assert estimated > measured


def test_a_multi_stem_tree_carries_its_stems_errors():
    one_stem = uncertainty.stock_u90_pct(METHOD, POPLAR, sizes(20.0))
    forked = uncertainty.stock_u90_pct(METHOD, POPLAR, sizes(None, stems=[20.0, 20.0]))
    # The model error is the tree's (shared by its stems); the tape errors are independent,
    # so two equal stems are a little more certain than one, never less.
    assert forked <= one_stem
    _, _, sigma = poplar_constants()
    assert forked >= math.ceil(100 * Z90 * sigma)


def test_no_change_is_all_uncertainty_and_the_answer_is_deterministic():
    assert uncertainty.period_u90_pct(METHOD, POPLAR, sizes(15.0), sizes(15.0)) == 100
    first = uncertainty.period_u90_pct(METHOD, ELM, sizes(20.0), sizes(22.0))
    assert all(
        uncertainty.period_u90_pct(METHOD, ELM, sizes(20.0), sizes(22.0)) == first for _ in range(5)
    )


def test_many_trees_together_are_more_certain_than_one():
    part = uncertainty.period_parts(METHOD, POPLAR, sizes(15.0), sizes(17.0))
    one = uncertainty.combined_u90_pct([part])
    hundred = uncertainty.combined_u90_pct([part] * 100)
    assert one == uncertainty.period_u90_pct(METHOD, POPLAR, sizes(15.0), sizes(17.0))
    assert hundred == math.ceil(one / 10) or hundred == pytest.approx(one / 10, abs=1)
    # Treating one equation's error as shared by all its trees keeps it whole.
    shared = uncertainty.combined_u90_pct([part] * 100, correlated_model=True)
    assert shared >= math.floor(100 * Z90 * METHOD.species[POPLAR]["model_error"]["sigma_ln"])


@pytest.mark.parametrize(
    "species_id", sorted(s for s, v in METHOD.species.items() if "model_error" in v)
)
def test_every_species_has_a_computed_uncertainty_above_the_threshold(species_id):
    threshold = METHOD.crediting["uncertainty_threshold_pct"]
    u90 = uncertainty.stock_u90_pct(METHOD, species_id, sizes(20.0, 12.0))
    assert threshold < u90 < 200


def test_an_older_parameter_set_keeps_its_fixed_uncertainties():
    old = load_method("sipang-2026.1")
    for species_id, fixed in (("populus_spp", 30), (FIR, 10)):
        assert uncertainty.stock_u90_pct(old, species_id, sizes(20.0, 12.0)) == fixed
        changed = uncertainty.period_u90_pct(old, species_id, sizes(20.0, 12.0), sizes(22.0, 13))
        assert changed == fixed
    from server.carbon.estimate import EstimateError

    with pytest.raises(EstimateError):
        uncertainty.stock_u90_pct(old, FIR, sizes(20.0))
