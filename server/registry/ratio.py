"""Verification by a ratio estimator: how much of the claimed growth the sample confirms.

For each sampled tree i, x_i is the claimed growth of its period and y_i the growth the
verifier's blind re-measurement gives from the same start (0 when the tree is not found,
dead or felled). Over the sample,

    R  = Σy / Σx                                   (the ratio of verified to claimed growth)
    SE = √((1 − n/N) · Σ(y_i − R·x_i)² / (n·(n − 1))) / x̄
    L  = R − t(0.95, n − 1) · SE                   (one-sided 95 % lower confidence bound)

(Cochran, Sampling Techniques, 3rd ed., 1977, §6.3–6.4: the ratio estimator and its
variance, with the finite population correction; when every tree is re-measured there is no
sampling error and L = R). The period issues the claimed total times
L, never more than the claim (L is capped at 1); when R is below REJECT_RATIO or L is not
positive, the period is rejected and the village must be re-measured in full.

A baseline check (server/registry/baseline.py) uses the same estimator the other way round:
x_i the claimed registration stock, y_i the re-measured stock, and the upper bound
U = R + t(0.95, n − 1) · SE, because there the danger is a claim that is too small.
"""

import math
from dataclasses import dataclass

# Student's t, one-sided 95 % quantiles t(0.95, df) (any statistics table; e.g. NIST/SEMATECH
# e-Handbook of Statistical Methods, §1.3.6.7.2). Between rows the smaller df is used, which
# gives the larger t (conservative).
T95 = {
    1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860,
    9: 1.833, 10: 1.812, 11: 1.796, 12: 1.782, 13: 1.771, 14: 1.761, 15: 1.753, 16: 1.746,
    17: 1.740, 18: 1.734, 19: 1.729, 20: 1.725, 21: 1.721, 22: 1.717, 23: 1.714, 24: 1.711,
    25: 1.708, 26: 1.706, 27: 1.703, 28: 1.701, 29: 1.699, 30: 1.697, 40: 1.684, 60: 1.671,
    120: 1.658,
}  # fmt: skip
T95_INFINITE = 1.645

# Below this ratio of verified to claimed growth the claims are not trusted at all (Sipang
# rule): the period is rejected and the village re-measured in full.
REJECT_RATIO = 0.85


def t95(df: int) -> float:
    """t(0.95, df), rounding df down to the table's nearest row."""
    if df > 120:
        return T95_INFINITE
    return T95[max(row for row in T95 if row <= df)]


@dataclass(frozen=True)
class RatioEstimate:
    n: int
    claimed_g: int
    verified_g: int
    ratio: float
    standard_error: float
    lower_bound: float

    @property
    def ratio_ppm(self) -> int:
        return math.floor(self.ratio * 1_000_000)

    @property
    def upper_bound(self) -> float:
        """R + t(0.95, n − 1)·SE, the one-sided 95 % upper bound (a baseline check reads
        it: how far the claims may fall short); unbounded from a single tree."""
        if self.standard_error == 0:
            return self.ratio
        if self.n < 2:
            return math.inf
        return self.ratio + t95(self.n - 1) * self.standard_error

    @property
    def scale_ppm(self) -> int:
        """The share of the claim to issue: the lower bound, within 0 and 1."""
        return min(max(math.floor(self.lower_bound * 1_000_000), 0), 1_000_000)

    @property
    def status(self) -> str:
        if self.claimed_g <= 0:
            return "passed"  # nothing claimed: nothing to confirm
        if self.ratio < REJECT_RATIO or self.lower_bound <= 0:
            return "failed"
        return "passed" if self.scale_ppm == 1_000_000 else "partial"


def estimate(pairs: list[tuple[int, int]], population: int) -> RatioEstimate:
    """The ratio estimate from (claimed, verified) growth pairs of a sample of `population`."""
    n = len(pairs)
    sum_x = sum(x for x, _ in pairs)
    sum_y = sum(y for _, y in pairs)
    if n == 0 or sum_x <= 0:
        return RatioEstimate(n, sum_x, sum_y, 1.0, 0.0, 1.0)
    ratio = sum_y / sum_x
    fpc = max(1 - n / population, 0.0) if population else 1.0
    if fpc == 0:  # every tree was re-measured: a census has no sampling error
        return RatioEstimate(n, sum_x, sum_y, ratio, 0.0, ratio)
    if n < 2:  # one tree of many says nothing of the others
        return RatioEstimate(n, sum_x, sum_y, ratio, abs(ratio), 0.0)
    mean_x = sum_x / n
    residual = sum((y - ratio * x) ** 2 for x, y in pairs)
    se = math.sqrt(fpc * residual / (n * (n - 1))) / mean_x
    return RatioEstimate(n, sum_x, sum_y, ratio, se, ratio - t95(n - 1) * se)
