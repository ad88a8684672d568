"""Crediting a period: never more than measured net growth, no gram created or lost; a
household's net loss is covered by the buffer, never carried as debt."""

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.carbon.crediting import (
    GRAMS_PER_TONNE,
    TreeGrowth,
    credit_period,
    uncertainty_deduction_g,
)
from server.carbon.rules import BUFFER_FLOOR_PCT

HOUSEHOLDS = ["360423101201-0001-AB", "360423101201-0002-CD", "360423101201-0003-EF"]

growths = st.lists(
    st.builds(
        TreeGrowth,
        tree_id=st.uuids().map(str),
        household=st.sampled_from(HOUSEHOLDS),
        stock_start_g=st.integers(0, 5_000_000),
        stock_end_g=st.none() | st.integers(0, 8_000_000),
        uncertainty_pct=st.sampled_from([10, 15, 30]),
    ),
    max_size=30,
)
carry_ins = st.dictionaries(st.sampled_from(HOUSEHOLDS), st.integers(-2_000_000, 3_000_000))
buffer_pcts = st.integers(BUFFER_FLOOR_PCT, 100)


def expected_deduction(growth_g, uncertainty_pct, threshold_pct=10):
    """Written out independently: the share above the threshold of a gain, rounded up."""
    share = max(uncertainty_pct - threshold_pct, 0)
    return math.ceil(Fraction(max(growth_g, 0) * share, 100))


@given(growths, carry_ins, buffer_pcts)
def test_never_issues_more_than_net_measured_growth_plus_carry_in(trees, carry_in, buffer_pct):
    period = credit_period(trees, carry_in, buffer_pct=buffer_pct)
    gross = sum(t.growth_g for t in trees)
    deduction = sum(expected_deduction(t.growth_g, t.uncertainty_pct) for t in trees)
    positive = sum(max(h.available_g, 0) for h in period.households.values())
    assert period.gross_g == gross
    assert period.deduction_g == deduction
    assert period.net_g == gross - deduction
    assert period.tonnes * GRAMS_PER_TONNE <= positive
    assert period.tonnes == positive // GRAMS_PER_TONNE  # and no whole tonne withheld
    assert period.loss_g == sum(max(-h.available_g, 0) for h in period.households.values())


@given(growths, carry_ins, buffer_pcts)
def test_every_gram_is_issued_or_carried_forward(trees, carry_in, buffer_pct):
    period = credit_period(trees, carry_in, buffer_pct=buffer_pct)
    lines = period.households
    assert set(lines) == {t.household for t in trees} | set(carry_in)
    for code, line in lines.items():
        mine = [t for t in trees if t.household == code]
        assert line.carry_in_g == carry_in.get(code, 0)
        assert line.gross_g == sum(t.growth_g for t in mine)
        assert line.deduction_g == sum(
            expected_deduction(t.growth_g, t.uncertainty_pct) for t in mine
        )
        assert line.issued_g + line.carry_out_g == line.carry_in_g + line.net_g + line.loss_g
        assert 0 <= line.issued_g <= max(line.available_g, 0)
        assert line.carry_out_g >= 0  # a loss is never carried as debt
        if line.available_g <= 0:
            assert line.issued_g == 0 and line.carry_out_g == 0
            assert line.loss_g == -line.available_g
    issued = sum(line.issued_g for line in lines.values())
    left = sum(line.carry_out_g for line in lines.values())
    total = sum(line.available_g for line in lines.values())
    assert issued == period.tonnes * GRAMS_PER_TONNE
    assert issued + left == total + period.loss_g
    assert 0 <= left < GRAMS_PER_TONNE


@given(growths, carry_ins)
def test_tonnes_are_shared_pro_rata_by_largest_remainder(trees, carry_in):
    period = credit_period(trees, carry_in, buffer_pct=20)
    positive = {c: h.available_g for c, h in period.households.items() if h.available_g > 0}
    whole = sum(positive.values())
    for code, grams in positive.items():
        exact = Fraction(period.tonnes * GRAMS_PER_TONNE * grams, whole)
        assert period.households[code].issued_g in (math.floor(exact), math.ceil(exact))


@given(growths, carry_ins, buffer_pcts)
def test_buffer_is_the_rounded_up_share_of_issued_tonnes(trees, carry_in, buffer_pct):
    period = credit_period(trees, carry_in, buffer_pct=buffer_pct)
    assert period.buffer_tonnes == math.ceil(Fraction(period.tonnes * buffer_pct, 100))
    assert period.sellable_tonnes == period.tonnes - period.buffer_tonnes
    assert 0 <= period.buffer_tonnes <= period.tonnes


@given(st.lists(st.tuples(growths, buffer_pcts), min_size=1, max_size=6))
def test_carrying_forward_over_many_periods_loses_no_gram(periods):
    carry: dict[str, int] = {}
    issued = net = 0
    for trees, buffer_pct in periods:
        period = credit_period(trees, carry, buffer_pct=buffer_pct)
        issued += period.tonnes * GRAMS_PER_TONNE
        net += period.net_g + period.loss_g
        carry = {code: line.carry_out_g for code, line in period.households.items()}
        assert issued + sum(carry.values()) == net
        assert 0 <= sum(carry.values()) < GRAMS_PER_TONNE


@given(st.integers(0, 10_000_000), st.integers(0, 10_000_000))
def test_dead_or_felled_trees_count_minus_their_starting_stock(start, end):
    dead = TreeGrowth("t", HOUSEHOLDS[0], start, None, 30)
    assert dead.growth_g == -start
    living = TreeGrowth("t", HOUSEHOLDS[0], start, end, 30)
    assert living.growth_g == end - start
    period = credit_period([dead], {}, buffer_pct=20)
    assert period.deduction_g == 0
    assert period.households[HOUSEHOLDS[0]].carry_out_g == 0
    assert period.loss_g == start


@given(st.integers(0, 10_000_000), st.integers(0, 10_000_000), st.integers(0, 10_000_000))
def test_a_tree_never_loses_more_than_it_was_credited(start, end, credited):
    tree = TreeGrowth("t", HOUSEHOLDS[0], start, end, 10, min_growth_g=-credited)
    assert tree.growth_g == max(end - start, -credited)


@pytest.mark.parametrize("buffer_pct", [-1, 0, BUFFER_FLOOR_PCT - 1, 101])
def test_a_buffer_below_the_floor_is_refused(buffer_pct):
    with pytest.raises(ValueError, match="buffer"):
        credit_period([], {}, buffer_pct=buffer_pct)


@pytest.mark.parametrize(
    ("growth", "uncertainty", "deduction"),
    [
        (1_000, 10, 0),  # a national species model: nothing above the 10 % threshold
        (1_000, 5, 0),
        (1_000, 30, 200),  # the generic route: 20 % deducted
        (1_001, 30, 201),  # 200.2 rounds up
        (1, 30, 1),
        (1_000, 15, 50),
        (0, 30, 0),
        (-5_000, 30, 0),  # losses count in full, nothing is taken off them
    ],
)
def test_uncertainty_deduction_is_on_gains_above_the_threshold_rounded_up(
    growth, uncertainty, deduction
):
    assert uncertainty_deduction_g(growth, uncertainty, 10) == deduction


@given(st.integers(-10_000_000, 10_000_000), st.integers(0, 100), st.integers(0, 100))
def test_uncertainty_deduction_never_exceeds_the_gain(growth, uncertainty, threshold):
    deduction = uncertainty_deduction_g(growth, uncertainty, threshold)
    assert deduction == math.ceil(Fraction(max(growth, 0) * max(uncertainty - threshold, 0), 100))
    assert 0 <= deduction <= max(growth, 0)


def test_uncertainty_threshold_is_a_parameter():
    trees = [TreeGrowth("t", HOUSEHOLDS[0], 0, 1_000_000, 30)]
    assert credit_period(trees, {}, buffer_pct=20).deduction_g == 200_000
    assert credit_period(trees, {}, buffer_pct=20, uncertainty_threshold_pct=0).deduction_g == (
        300_000
    )


def test_worked_example():
    """Two households, one period, 20 % buffer. Every figure below can be checked by hand.

    Household A carries 450 000 g in and has three trees:
      fir (10 %):     800 000 → 1 500 000 g   +700 000, no deduction
      camphor (30 %): 100 000 →   600 000 g   +500 000, deduction 20 % = 100 000
      felled:          50 000 → gone          −50 000, no deduction
      net 1 050 000; available 450 000 + 1 050 000 = 1 500 000
    Household B carries nothing in and has one generic tree:
      poplar (30 %):  200 000 → 1 450 001 g   +1 250 001, deduction ⌈250 000.2⌉ = 250 001
      net 1 000 000; available 1 000 000
    Together 2 500 000 g: 2 whole tonnes, shared 1 500 000 : 1 000 000 = 3 : 2,
    so A is issued 1 200 000 and carries 300 000, B is issued 800 000 and carries 200 000.
    Buffer ⌈2 × 20 %⌉ = ⌈0.4⌉ = 1 tonne; 1 tonne sellable.
    """
    a, b = HOUSEHOLDS[:2]
    trees = [
        TreeGrowth("a-fir", a, 800_000, 1_500_000, 10),
        TreeGrowth("a-camphor", a, 100_000, 600_000, 30),
        TreeGrowth("a-felled", a, 50_000, None, 10),
        TreeGrowth("b-poplar", b, 200_000, 1_450_001, 30),
    ]
    period = credit_period(trees, {a: 450_000}, buffer_pct=20)
    line_a, line_b = period.households[a], period.households[b]
    assert (line_a.gross_g, line_a.deduction_g, line_a.net_g) == (1_150_000, 100_000, 1_050_000)
    assert (line_b.gross_g, line_b.deduction_g, line_b.net_g) == (1_250_001, 250_001, 1_000_000)
    assert (line_a.available_g, line_b.available_g) == (1_500_000, 1_000_000)
    assert (period.gross_g, period.deduction_g, period.net_g) == (2_400_001, 350_001, 2_050_000)
    assert period.tonnes == 2
    assert (line_a.issued_g, line_a.carry_out_g) == (1_200_000, 300_000)
    assert (line_b.issued_g, line_b.carry_out_g) == (800_000, 200_000)
    assert (period.buffer_tonnes, period.sellable_tonnes) == (1, 1)


def test_a_household_at_a_loss_issues_nothing_and_its_loss_goes_to_the_buffer():
    """C's dead tree (−1.5 t) outweighs its 0.2 t carry-in: C's 1.3 t loss is covered by
    cancelling buffer tonnes at issuance, not by A, whose 2.5 t yield 2 tonnes."""
    a, c = HOUSEHOLDS[0], HOUSEHOLDS[2]
    trees = [
        TreeGrowth("a-fir", a, 0, 2_500_000, 10),
        TreeGrowth("c-dead", c, 1_500_000, None, 10),
    ]
    period = credit_period(trees, {c: 200_000}, buffer_pct=20)
    assert period.tonnes == 2
    assert period.households[a].issued_g == 2_000_000
    assert period.households[a].carry_out_g == 500_000
    assert period.households[c].issued_g == 0
    assert period.households[c].carry_out_g == 0
    assert period.households[c].loss_g == period.loss_g == 1_300_000
    assert period.buffer_tonnes == 1 and period.sellable_tonnes == 1


def test_less_than_a_tonne_is_all_carried_forward():
    a = HOUSEHOLDS[0]
    period = credit_period([TreeGrowth("a", a, 0, 999_999, 10)], {}, buffer_pct=20)
    assert (period.tonnes, period.buffer_tonnes) == (0, 0)
    assert period.households[a].carry_out_g == 999_999
    later = credit_period([TreeGrowth("a", a, 999_999, 1_000_000, 10)], {a: 999_999}, buffer_pct=20)
    assert later.tonnes == 1
    assert later.households[a].carry_out_g == 0


def test_nothing_at_all_issues_nothing():
    period = credit_period([], {}, buffer_pct=20)
    assert (period.tonnes, period.buffer_tonnes, period.gross_g, period.households) == (
        0,
        0,
        0,
        {},
    )
