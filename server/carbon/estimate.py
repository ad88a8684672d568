"""Per-tree carbon stock: biomass above and below ground, carbon, CO2e in whole grams.

Routes, best first: a national standard's model (B = a·D^b·H^c per DBH branch, above and
below ground), a published species equation (AGB = Σ CF·a·D^b·H^c, roots by root:shoot), the
volume route (V = c·D^a·H^b × wood density × BEF), or the generic equation AGB = a·ρ·D^b with
the species' own wood density (flagged). From sipang-2026.2 a multi-stem tree is the sum of its
stems, a tree measured without height gets one from the species' height–diameter curve (and
says so), and the uncertainty is computed (server/carbon/uncertainty.py). The same arithmetic
runs in the browser (pwa/js/carbon.js): keep the order of operations identical so both give
the same grams.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from server.carbon.allometry import (
    EstimateError,
    biomass,
    equivalent_dbh,
    estimated_height_m,
    needs_height,
    species_for,
    stem_biomass,
    to_grams,
)
from server.carbon.method import Method, load_method
from server.carbon.uncertainty import stock_u90_pct

CO2_PER_C = 44 / 12
DBH_RANGE_CM = (0.1, 300.0)
HEIGHT_RANGE_M = (0.3, 80.0)
AGE_RANGE = (1, 300)
COUNT_RANGE = (1, 1_000_000)


@dataclass
class TreeEstimate:
    species: str
    route: str
    method_version: str
    method_sha256: str
    inputs: dict[str, Any]
    agb_kg: float
    bgb_kg: float
    carbon_kg: float
    co2e_g: int
    uncertainty_pct: int
    projection: bool = False
    annual_co2e_g: int | None = None
    count: int = 1
    total_co2e_g: int | None = None
    total_annual_co2e_g: int | None = None
    flags: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fitted_range_flags(species: dict[str, Any], stems_cm: list[float]) -> list[dict[str, str]]:
    """A stem whose DBH is outside the range the species' equation was fitted on: the stock
    is the equation extrapolated, with a larger uncertainty; crediting holds growth inside."""
    fitted = species.get("fitted_range")
    if not fitted:
        return []
    low, high = fitted["dbh_cm"]
    outside = [d for d in stems_cm if not low <= d <= high]
    if not outside:
        return []
    dbh = outside[0]
    return [
        {
            "code": "outside_fitted_range",
            "reason": f"胸径 {dbh:g} 厘米超出{species['name_zh']}方程的拟合范围 {low:g}–{high:g} "
            "厘米：储量为外推值，不确定性更大，超出部分的生长不计入碳汇",
        }
    ]


def _check_range(problems, name: str, value, low, high, unit: str) -> None:
    if value is not None and not (low <= value <= high):
        problems.append({"field": name, "problem": f"must be between {low} and {high} {unit}"})


def shape_flags(species: dict[str, Any], dbh: float, height: float | None) -> list[dict[str, str]]:
    """Flags for a DBH/height pair outside what the species can be."""
    flags = []
    low, high = species["limits"]["dbh_cm"]
    if not low <= dbh <= high:
        flags.append(
            {
                "code": "dbh_implausible",
                "reason": f"胸径 {dbh:g} 厘米超出{species['name_zh']}的范围 {low}–{high} 厘米",
            }
        )
    if height is None:
        return flags
    max_height = species["limits"]["height_m"][1]
    if height > max_height:
        flags.append(
            {
                "code": "height_implausible",
                "reason": f"树高 {height:g} 米超过{species['name_zh']}的最大树高 {max_height} 米",
            }
        )
    slender_low, slender_high = species["limits"]["height_per_dbh_m_per_cm"]
    ratio = height / dbh
    if dbh >= 2 and not slender_low <= ratio <= slender_high:
        flags.append(
            {
                "code": "shape_implausible",
                "reason": f"树高与胸径之比每厘米 {ratio:.2f} 米，超出{species['name_zh']}的范围 "
                f"{slender_low}–{slender_high}",
            }
        )
    return flags


def estimate_tree(
    species_id: str,
    dbh_cm: float | None = None,
    height_m: float | None = None,
    *,
    stems_cm: list[float] | None = None,
    method: Method | None = None,
    count: int = 1,
) -> TreeEstimate:
    """The carbon stock of one measured tree (and of `count` such trees)."""
    method = method or load_method()
    species = species_for(method, species_id)
    problems: list[dict[str, str]] = []
    if stems_cm:
        for index, stem in enumerate(stems_cm):
            _check_range(problems, f"stems_cm/{index}", stem, *DBH_RANGE_CM, "cm")
        if not problems:
            dbh_cm = equivalent_dbh(stems_cm)
    if dbh_cm is None and not problems:
        problems.append({"field": "dbh", "problem": "is required (cm at 1.3 m)"})
    _check_range(problems, "dbh", dbh_cm, *DBH_RANGE_CM, "cm")
    _check_range(problems, "height", height_m, *HEIGHT_RANGE_M, "m")
    _check_range(problems, "count", count, *COUNT_RANGE, "trees")
    can_estimate_height = "height_model" in species
    if height_m is None and needs_height(species) and not can_estimate_height:
        problems.append(
            {
                "field": "height",
                "problem": f"is required for the {species['route'].replace('_', ' ')} "
                f"of {species['name_zh']} (m, {HEIGHT_RANGE_M[0]}–"
                f"{HEIGHT_RANGE_M[1]})",
            }
        )
    if problems:
        raise EstimateError(problems)
    route = species["route"]
    inputs: dict[str, Any] = {"dbh_cm": dbh_cm, "height_m": height_m}
    if stems_cm:
        inputs["stems_cm"] = list(stems_cm)
    height_used = height_m
    if height_m is not None:
        inputs["height_source"] = "measured"
    elif needs_height(species):
        # The tallest stem is the largest: the curve at its DBH, never at √Σd².
        height_used = estimated_height_m(method, species_id, max(stems_cm or [dbh_cm]))
        inputs |= {"height_m": height_used, "height_source": "estimated"}
    if method.sums_stems:
        agb, bgb, carbon = stem_biomass(species, list(stems_cm or [dbh_cm]), height_used)
    else:
        agb, bgb, carbon = biomass(species, dbh_cm, height_used)
    co2e_g = to_grams(carbon * CO2_PER_C)
    flags = shape_flags(species, dbh_cm, height_m)
    flags += fitted_range_flags(species, list(stems_cm or [dbh_cm]))
    if "model_error" in species:
        sizes = {"dbh_cm": dbh_cm, "height_m": height_m, "stems_cm": stems_cm}
        uncertainty = stock_u90_pct(method, species_id, sizes)
    else:
        uncertainty = species["uncertainty_pct"]
    if route == "generic":
        flags.append(
            {
                "code": "generic_route",
                "reason": f"{species['name_zh']}尚无引用的树种方程：用通用方程和该树种的木材密度"
                f"估算，不确定性 {uncertainty} %",
            }
        )
    return TreeEstimate(
        species=species_id,
        route=route,
        method_version=method.version,
        method_sha256=method.sha256,
        inputs=inputs,
        agb_kg=agb,
        bgb_kg=bgb,
        carbon_kg=carbon,
        co2e_g=co2e_g,
        uncertainty_pct=uncertainty,
        count=count,
        total_co2e_g=co2e_g * count,
        flags=flags,
    )


def projected_size(species: dict[str, Any], age: float) -> tuple[float, float]:
    """DBH (cm) and height (m) the species' projection curve gives at an age."""
    curve = species["projection"]
    dbh = curve["dbh_max_cm"] * (1 - math.exp(-curve["dbh_rate"] * age)) ** curve["dbh_shape"]
    height = 1.3 + (curve["height_max_m"] - 1.3) * (1 - math.exp(-curve["height_rate"] * dbh))
    return dbh, height


def project_tree(
    species_id: str, age: int, *, count: int = 1, method: Method | None = None
) -> TreeEstimate:
    """An age-only projection: stock at `age` and growth over its last year. Never credited."""
    method = method or load_method()
    species = species_for(method, species_id)
    problems: list[dict[str, str]] = []
    _check_range(problems, "age", age, *AGE_RANGE, "years")
    _check_range(problems, "count", count, *COUNT_RANGE, "trees")
    if problems:
        raise EstimateError(problems)
    dbh, height = projected_size(species, age)
    agb, bgb, carbon = biomass(species, dbh, height)
    before_dbh, before_height = projected_size(species, age - 1)
    before = biomass(species, before_dbh, before_height)[2] if before_dbh > 0 else 0.0
    route = species["route"]
    if "model_error" in species:
        sizes = {"dbh_cm": dbh, "height_m": height, "stems_cm": None}
        uncertainty = stock_u90_pct(method, species_id, sizes)
    else:
        uncertainty = species["uncertainty_pct"]
    co2e_g = to_grams(carbon * CO2_PER_C)
    annual = co2e_g - to_grams(before * CO2_PER_C)
    return TreeEstimate(
        species=species_id,
        route=route,
        method_version=method.version,
        method_sha256=method.sha256,
        inputs={"age": age, "projected_dbh_cm": dbh, "projected_height_m": height},
        agb_kg=agb,
        bgb_kg=bgb,
        carbon_kg=carbon,
        co2e_g=co2e_g,
        uncertainty_pct=uncertainty,
        projection=True,
        annual_co2e_g=annual,
        count=count,
        total_co2e_g=co2e_g * count,
        total_annual_co2e_g=annual * count,
        flags=[
            {
                "code": "projection",
                "reason": "estimated from age alone with an average growth curve: shown for "
                "information, never issued as credits",
            }
        ],
    )
