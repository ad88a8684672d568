"""The split of a sale in integer fen: commission, households, village collective,
maintenance; and largest-remainder sharing, so no fen is created or lost."""

from collections.abc import Mapping
from typing import Any


def largest_remainder(total: int, weights: Mapping[int, int]) -> dict[int, int]:
    """Share `total` fen over keys pro rata to their non-negative integer `weights`.

    Each key gets ⌊total·w/W⌋, then the leftover fen go one each to the largest remainders
    (ties: lower key first). The shares add up to `total` exactly (0 if all weights are 0).
    """
    weight = sum(weights.values())
    if total < 0 or any(w < 0 for w in weights.values()):
        raise ValueError("total and weights must be non-negative")
    if weight == 0:
        if total:
            raise ValueError("cannot share a non-zero total over zero weight")
        return {key: 0 for key in weights}
    shares = {key: total * w // weight for key, w in weights.items()}
    left = total - sum(shares.values())
    by_remainder = sorted(weights, key=lambda key: (-(total * weights[key] % weight), key))
    for key in by_remainder[:left]:
        shares[key] += 1
    return shares


def commission_bp(bundle: Mapping[str, Any], buyer_kind: str) -> int:
    """The bundle's commission in basis points for this kind of buyer (halved for
    individuals by default, DESIGN.md §8)."""
    return bundle["individual_commission_bp" if buyer_kind == "individual" else "commission_bp"]


def split_sale(amount_fen: int, bundle: Mapping[str, Any], buyer_kind: str) -> dict[str, int]:
    """Split a sale's amount by the bundle's policy; the four parts add up to the amount.

    The households' part equals `server.registry.bundles.farmers_fen` (what buyers see)."""
    if amount_fen <= 0:
        raise ValueError("a sale's amount must be positive")
    bp = commission_bp(bundle, buyer_kind)
    commission = -(-amount_fen * bp // 10_000)
    rest = amount_fen - commission
    households = rest * bundle["households_pct"] // 100
    collective = rest * bundle["collective_pct"] // 100
    return {
        "commission_bp": bp,
        "commission_fen": commission,
        "households_fen": households,
        "collective_fen": collective,
        "maintenance_fen": rest - households - collective,
    }
