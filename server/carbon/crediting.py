"""Crediting a period: measured growth of the same trees, minus deductions, in whole tonnes.

All amounts are integer grams of CO2e. Deductions round up and issuance rounds down, so
rounding never creates credit; whatever is not issued is carried forward per household. A
household whose period is a net loss carries nothing negative: its loss is covered by
cancelling buffer tonnes when the period is issued.
"""

from dataclasses import dataclass, field

from server.carbon.rules import BUFFER_FLOOR_PCT

GRAMS_PER_TONNE = 1_000_000


@dataclass(frozen=True)
class TreeGrowth:
    """One tree over a period: stock at its start (t1) and end (t2), in grams."""

    tree_id: str
    household: str
    stock_start_g: int
    stock_end_g: int | None  # None: dead or felled during the period
    uncertainty_pct: int
    min_growth_g: int | None = None  # a tree never loses more than it was credited

    @property
    def growth_g(self) -> int:
        end = 0 if self.stock_end_g is None else self.stock_end_g
        growth = end - self.stock_start_g
        return growth if self.min_growth_g is None else max(growth, self.min_growth_g)


def uncertainty_deduction_g(growth_g: int, uncertainty_pct: int, threshold_pct: int) -> int:
    """Deduct the share of relative uncertainty above the threshold (gains only; rounds up)."""
    share = max(uncertainty_pct - threshold_pct, 0)
    if growth_g <= 0 or share == 0:
        return 0
    return -(-growth_g * share // 100)


@dataclass
class HouseholdCredit:
    household: str
    carry_in_g: int = 0
    gross_g: int = 0
    deduction_g: int = 0
    issued_g: int = 0
    carry_out_g: int = 0
    loss_g: int = 0  # a net loss, covered by the buffer

    @property
    def net_g(self) -> int:
        return self.gross_g - self.deduction_g

    @property
    def available_g(self) -> int:
        return self.carry_in_g + self.net_g


@dataclass
class PeriodCredit:
    gross_g: int
    deduction_g: int
    tonnes: int
    buffer_tonnes: int
    households: dict[str, HouseholdCredit] = field(default_factory=dict)
    loss_g: int = 0

    @property
    def net_g(self) -> int:
        return self.gross_g - self.deduction_g

    @property
    def sellable_tonnes(self) -> int:
        return self.tonnes - self.buffer_tonnes


def _share_out(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` pro rata to positive weights, largest remainder, each ≤ its weight."""
    whole = sum(weights.values())
    if total == 0 or whole == 0:
        return {key: 0 for key in weights}
    parts = {key: total * w // whole for key, w in weights.items()}
    leftover = total - sum(parts.values())
    by_remainder = sorted(weights, key=lambda k: (-(total * weights[k] % whole), k))
    for key in by_remainder[:leftover]:
        parts[key] += 1
    return parts


def credit_period(
    growths: list[TreeGrowth],
    carry_in_g: dict[str, int],
    *,
    buffer_pct: int,
    uncertainty_threshold_pct: int = 10,
) -> PeriodCredit:
    """Whole tonnes from a period's measured growth; households carry what is not issued."""
    if buffer_pct < BUFFER_FLOOR_PCT or buffer_pct > 100:
        raise ValueError(f"the buffer is {BUFFER_FLOOR_PCT}–100 %, not {buffer_pct} %")
    households: dict[str, HouseholdCredit] = {
        code: HouseholdCredit(code, carry_in_g=grams) for code, grams in carry_in_g.items()
    }
    for tree in growths:
        line = households.setdefault(tree.household, HouseholdCredit(tree.household))
        line.gross_g += tree.growth_g
        line.deduction_g += uncertainty_deduction_g(
            tree.growth_g, tree.uncertainty_pct, uncertainty_threshold_pct
        )
    positive = {code: h.available_g for code, h in households.items() if h.available_g > 0}
    tonnes = sum(positive.values()) // GRAMS_PER_TONNE
    issued = _share_out(tonnes * GRAMS_PER_TONNE, positive)
    for code, line in households.items():
        line.issued_g = issued.get(code, 0)
        line.loss_g = max(-line.available_g, 0)
        line.carry_out_g = line.available_g + line.loss_g - line.issued_g
    return PeriodCredit(
        gross_g=sum(h.gross_g for h in households.values()),
        deduction_g=sum(h.deduction_g for h in households.values()),
        tonnes=tonnes,
        buffer_tonnes=-(-tonnes * buffer_pct // 100),
        households=households,
        loss_g=sum(h.loss_g for h in households.values()),
    )
