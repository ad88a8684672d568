"""The split of a sale in integer fen: commission, households, village collective,
maintenance (each part shared on by `server.units.largest_remainder`)."""

from collections.abc import Mapping
from typing import Any


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
