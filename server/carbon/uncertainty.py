"""Uncertainty computed, not assumed: the 90 % half-width of a tree's stock, or of its net
change over a period, as a whole percent (rounded up), analytic and deterministic.

Two sources of error, both from the parameter set (every number cited there):
- model error: the equation's residual standard error σ in ln units (species
  `model_error.sigma_ln`), taken as a relative error of the stock, and larger outside the
  range the equation was fitted on: σ × max(1, D/hi, lo/D) (a Sipang rule: the error grows in
  proportion to how far the tree is outside the sample). One tree keeps its deviation from
  the equation, so at both ends of a period the model errors are fully correlated: the change
  carries σ₂·C₂ − σ₁·C₁, which is σ·ΔC inside the range.
- measurement error: DBH (tape) and height (clinometer) tolerances, read as 90 % bounds
  (`measurement_error`), independent at each reading, propagated through the equation's slope
  (first order, central differences). A height estimated from the species' height–diameter
  curve carries the curve's RMSE instead, the same deviation at both ends of a period.

Sets before sipang-2026.2 carry a fixed uncertainty per species and no measurement error: for
them the model error is that fixed U90 (so a tree's stock and change get exactly it), and a
fir without height is refused, as those sets did.

VM0047 deducts max(0, U90 − 10 %) of the net change (DESIGN.md §4). Per-tree U90s are large
(a single tree's equation error is large); summed over many trees the independent parts shrink
with √n: `period_parts` + `combined_u90_pct` give the U90 of a village's or species' total.
"""

import math
from typing import Any

from server.carbon.allometry import (
    EstimateError,
    estimated_height_m,
    needs_height,
    species_for,
    stem_biomass,
)
from server.carbon.method import Method

Z90 = 1.6448536269514722  # two-sided 90 % normal quantile
STEP_CM = 1e-3  # central-difference step for dD (and dH, in m)


def _stems(sizes: dict[str, Any]) -> list[float]:
    return list(sizes.get("stems_cm") or [sizes["dbh_cm"]])


def _model_sigma(species: dict[str, Any], dbh: float) -> float:
    if "model_error" not in species:  # sets before 2026.2: a fixed U90 per species, all model
        return species["uncertainty_pct"] / 100 / Z90
    low, high = species["fitted_range"]["dbh_cm"]
    return species["model_error"]["sigma_ln"] * max(1.0, dbh / high, low / dbh)


def _dbh_sd(method: Method, dbh: float) -> float:
    error = method.document.get("measurement_error")
    return (error["dbh_cm"] + error["dbh_share"] * dbh) / Z90 if error else 0.0


def _height_sd(method: Method, height: float) -> float:
    error = method.document.get("measurement_error")
    return max(error["height_m"], error["height_share"] * height) / Z90 if error else 0.0


def _reading(method: Method, species_id: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """One reading's carbon (kg), its model sd, and its measurement terms."""
    species = species_for(method, species_id)
    stems = _stems(sizes)
    height = sizes.get("height_m")
    estimated = height is None and needs_height(species)
    if estimated and "height_model" not in species:
        raise EstimateError(
            [{"field": "height", "problem": f"is required for {species['name_zh']} in this set"}]
        )
    if estimated:
        height = estimated_height_m(method, species_id, max(stems))

    def carbon(stem: float, h: float | None) -> float:
        return stem_biomass(species, [stem], h)[2]

    total = model_sd = dbh_var = dc_dh = 0.0
    height_slope = height is not None and needs_height(species)
    for stem in stems:
        c = carbon(stem, height)
        total += c
        model_sd += _model_sigma(species, stem) * c  # one tree: stems share the error
        step = min(STEP_CM, stem / 10)
        slope = (carbon(stem + step, height) - carbon(stem - step, height)) / (2 * step)
        dbh_var += (slope * _dbh_sd(method, stem)) ** 2
        if height_slope:
            dc_dh += (carbon(stem, height + STEP_CM) - carbon(stem, height - STEP_CM)) / (
                2 * STEP_CM
            )
    if estimated:
        height_sd = species["height_model"]["rmse_m"]
    elif dc_dh:
        height_sd = _height_sd(method, height)
    else:
        height_sd = 0.0
    return {
        "carbon": total,
        "model_sd": model_sd,
        "dbh_var": dbh_var,
        "dc_dh": dc_dh,
        "height_sd": height_sd,
        "estimated": estimated,
    }


def _u90(sd: float, amount: float) -> int:
    if amount == 0:
        return 100
    return math.ceil(round(100 * Z90 * sd / abs(amount), 9))


def stock_u90_pct(method: Method, species_id: str, sizes: dict[str, Any]) -> int:
    """90 % half-width of one tree's stock, % of the stock (rounded up).
    `sizes`: {"dbh_cm", "height_m" (None: estimated if the route needs it), "stems_cm"}."""
    r = _reading(method, species_id, sizes)
    variance = r["model_sd"] ** 2 + r["dbh_var"] + (r["dc_dh"] * r["height_sd"]) ** 2
    return _u90(math.sqrt(variance), r["carbon"])


def period_parts(
    method: Method, species_id: str, start_sizes: dict[str, Any], end_sizes: dict[str, Any]
) -> dict[str, float]:
    """A tree's net change over a period (kg C) and its error parts: `model_sd` (correlated
    between the ends, so differenced) and `measurement_var` (independent readings)."""
    one = _reading(method, species_id, start_sizes)
    two = _reading(method, species_id, end_sizes)
    measurement = one["dbh_var"] + two["dbh_var"]
    if one["estimated"] and two["estimated"]:  # the same curve at both ends: differenced
        measurement += ((two["dc_dh"] - one["dc_dh"]) * two["height_sd"]) ** 2
    else:
        measurement += (one["dc_dh"] * one["height_sd"]) ** 2
        measurement += (two["dc_dh"] * two["height_sd"]) ** 2
    return {
        "change": two["carbon"] - one["carbon"],
        "model_sd": abs(two["model_sd"] - one["model_sd"]),
        "measurement_var": measurement,
    }


def period_u90_pct(
    method: Method, species_id: str, start_sizes: dict[str, Any], end_sizes: dict[str, Any]
) -> int:
    """90 % half-width of one tree's NET change over a period, % of that change (rounded up;
    100 when nothing changed). Sizes as for `stock_u90_pct`."""
    parts = period_parts(method, species_id, start_sizes, end_sizes)
    return _u90(math.sqrt(parts["model_sd"] ** 2 + parts["measurement_var"]), parts["change"])


def combined_u90_pct(parts: list[dict[str, float]], *, correlated_model: bool = False) -> int:
    """U90 of the summed change of many trees' `period_parts`. Measurement errors are
    independent. Model errors are independent tree to tree (each tree's residual), unless
    `correlated_model` (e.g. the parts of one species' equation, as a conservative bound)."""
    change = sum(p["change"] for p in parts)
    measurement = sum(p["measurement_var"] for p in parts)
    if correlated_model:
        model = sum(p["model_sd"] for p in parts) ** 2
    else:
        model = sum(p["model_sd"] ** 2 for p in parts)
    return _u90(math.sqrt(model + measurement), change)
