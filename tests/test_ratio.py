"""The ratio estimator that decides what a verified period issues (docs/methodology.md §4.6)."""

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.registry import ratio

# The worked example of docs/methodology.md §4.6, in grams.
CLAIMED = [40_000, 55_000, 30_000, 62_000, 48_000]
VERIFIED = [41_000, 53_000, 30_000, 60_000, 47_000]


def test_the_documented_worked_example():
    found = ratio.estimate(list(zip(CLAIMED, VERIFIED, strict=True)), 20)
    assert round(found.ratio, 5) == 0.98298
    assert round(found.standard_error, 6) == 0.009344
    assert round(found.lower_bound, 5) == 0.96306
    assert found.status == "partial"
    assert 12 * found.scale_ppm // 1_000_000 == 11


def test_the_documented_rejection():
    verified = [41_000, 53_000, 30_000, 20_000, 47_000]
    found = ratio.estimate(list(zip(CLAIMED, verified, strict=True)), 20)
    assert found.ratio_ppm == 812_765  # 191 / 235
    assert found.status == "failed"


def test_t_quantiles_round_down_to_the_tables_row_and_match_known_values():
    assert ratio.t95(4) == 2.132
    assert ratio.t95(29) == 1.699
    assert ratio.t95(35) == ratio.t95(30) == 1.697  # the smaller df: a larger t
    assert ratio.t95(1000) == 1.645


def test_a_census_has_no_sampling_error():
    found = ratio.estimate(list(zip(CLAIMED, VERIFIED, strict=True)), 5)
    assert found.standard_error == 0 and found.lower_bound == found.ratio


def test_one_tree_of_many_says_nothing_of_the_others():
    found = ratio.estimate([(10_000, 10_000)], 40)
    assert found.scale_ppm == 0 and found.status == "failed"


pairs = st.lists(
    st.tuples(st.integers(1, 500_000), st.integers(0, 600_000)), min_size=2, max_size=40
)


@given(pairs, st.integers(0, 400))
def test_the_lower_bound_never_exceeds_the_ratio_nor_issues_more_than_claimed(sample, extra):
    population = len(sample) + extra
    found = ratio.estimate(sample, population)
    assert found.lower_bound <= found.ratio + 1e-12
    assert 0 <= found.scale_ppm <= 1_000_000
    if found.status == "failed":
        assert found.ratio < ratio.REJECT_RATIO or found.lower_bound <= 0
    xs = [Fraction(x) for x, _ in sample]
    ys = [Fraction(y) for _, y in sample]
    r = sum(ys) / sum(xs)
    assert found.ratio == pytest.approx(float(r))
    if extra:
        n = len(sample)
        s2 = sum((y - r * x) ** 2 for x, y in zip(xs, ys, strict=True)) / (n - 1)
        var = (1 - Fraction(n, population)) * s2 / (n * (sum(xs) / n) ** 2)
        assert found.lower_bound == pytest.approx(
            float(r) - ratio.t95(n - 1) * math.sqrt(var), rel=1e-9, abs=1e-12
        )
