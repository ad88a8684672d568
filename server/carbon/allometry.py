"""The allometry every estimate shares: a species' biomass from its DBH (each stem) and height
by its route, the height–diameter curve, grams. server/carbon/estimate.py builds a tree's
estimate from these and server/carbon/uncertainty.py its uncertainty; keep the order of
operations identical to pwa/js/carbon.js so both give the same grams.
"""

import math
from typing import Any

from server.carbon.method import Method


class EstimateError(ValueError):
    """Inputs the methodology cannot use; `problems` name each field and its accepted range."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
        self.problems = problems


def to_grams(kilograms: float) -> int:
    """Kilograms to whole grams, halves rounded up (as JavaScript's Math.round does)."""
    return math.floor(kilograms * 1000 + 0.5)


def equivalent_dbh(stems_cm: list[float]) -> float:
    """One DBH for a multi-stem tree: D = √(Σ dᵢ²)."""
    return math.sqrt(sum(d * d for d in stems_cm))


def _terms(terms: list[dict[str, float]], dbh: float, height: float | None) -> float:
    """Σ CF·a·D^b·H^c over a published equation's terms (a given as a or as ln a)."""
    total = 0.0
    for term in terms:
        a = math.exp(term["ln_a"]) if "ln_a" in term else term["a"]
        value = a * dbh ** term["b"]
        if term.get("c"):
            value = value * height ** term["c"]
        total += term.get("bias_factor", 1) * value
    return total


def _power_model(branches: list[dict[str, float]], dbh: float, height: float) -> float:
    """B = a·D^b·H^c on the DBH branch (listed largest first). A standard's separately fitted
    branches need not meet at the switch (LY/T 2264's fir gives a few grams more just below 5 cm
    than at 5 cm), so below a switch the value is capped at the next branch's value at the
    switch: biomass never falls as DBH grows, and nothing changes away from the switch."""
    index = next(i for i, b in enumerate(branches) if dbh >= b["dbh_min_cm"])
    branch = branches[index]
    value = branch["a"] * dbh ** branch["b"] * height ** branch["c"]
    if index > 0:
        above = branches[index - 1]
        switch = above["dbh_min_cm"]
        value = min(value, above["a"] * switch ** above["b"] * height ** above["c"])
    return value


def biomass(species: dict[str, Any], dbh: float, height: float | None):
    """(AGB kg, BGB kg, carbon kg) of one tree by the species' route."""
    route = species["route"]
    if route == "species_model":
        agb = _power_model(species["agb"], dbh, height)
        bgb = _power_model(species["bgb"], dbh, height)
        return (
            agb,
            bgb,
            agb * species["carbon_fraction_above"] + bgb * species["carbon_fraction_below"],
        )
    if route == "species_equation":
        params = species["equation"]
        agb = _terms(params["agb_terms"], dbh, height)
    elif route == "volume_route":
        params = species["volume"]
        volume = params["c"] * dbh ** params["a"] * height ** params["b"]
        agb = volume * params["wood_density"] * params["bef"] * 1000
    else:  # generic: AGB = a·ρ·D^b, DBH only
        params = species["generic"]
        agb = params["a"] * params["wood_density"] * dbh ** params["b"]
    bgb = agb * params["root_shoot"]
    return agb, bgb, (agb + bgb) * params["carbon_fraction"]


def needs_height(species: dict[str, Any]) -> bool:
    """Whether the species' route uses tree height."""
    if species["route"] == "species_model":
        return any(branch["c"] != 0 for branch in species["agb"] + species["bgb"])
    if species["route"] == "species_equation":
        return any(term.get("c") for term in species["equation"]["agb_terms"])
    return species["route"] == "volume_route"


def estimated_height_m(method: Method, species_id: str, dbh_cm: float) -> float:
    """Height from the species' height–diameter curve, H = 1.3 + (Hmax − 1.3)·(1 − e^(−k·D)),
    for a tree measured without height. Crediting uses the same curve at both ends of a
    period, so height noise never becomes growth."""
    model = method.species[species_id]["height_model"]
    return 1.3 + (model["h_max_m"] - 1.3) * (1 - math.exp(-model["rate"] * dbh_cm))


def stem_biomass(
    species: dict[str, Any], stems_cm: list[float], height: float | None
) -> tuple[float, float, float]:
    """(AGB, BGB, carbon) in kg of a tree as the sum over its stems (one height for all)."""
    agb = bgb = carbon = 0.0
    for stem in stems_cm:
        parts = biomass(species, stem, height)
        agb, bgb, carbon = agb + parts[0], bgb + parts[1], carbon + parts[2]
    return agb, bgb, carbon


def species_for(method: Method, species_id: str) -> dict[str, Any]:
    """The species' entry in the parameter set, refusing an unknown or excluded one."""
    species = method.species.get(species_id)
    if species is None:
        raise EstimateError(
            [
                {
                    "field": "species",
                    "problem": f"unknown species {species_id!r}; see GET /api/v1/species",
                }
            ]
        )
    if species["route"] == "excluded":
        raise EstimateError([{"field": "species", "problem": species["excluded_reason"]}])
    return species
