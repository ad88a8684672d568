"""The carbon API: species, parameter sets, the public calculator, flags, credit calculations."""

from typing import Any

from flask import Blueprint, g, jsonify, request

from server import villages
from server.access import PUBLIC, allow
from server.carbon import records
from server.carbon.estimate import (
    AGE_RANGE,
    EstimateError,
    estimate_tree,
    needs_height,
    project_tree,
)
from server.carbon.method import available_versions, load_method
from server.db import first, get_db
from server.errors import ApiError
from server.validation import json_body

ESTIMATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["species"],
    "properties": {
        "species": {"type": "string", "maxLength": 64},
        "dbh": {"type": "number", "description": "cm at 1.3 m"},
        "stems": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 1,
            "maxItems": 20,
            "description": "DBH of each stem (cm) of a multi-stem tree",
        },
        "height": {"type": "number", "description": "m"},
        "age": {"type": "integer", "description": "years; with no DBH, gives a projection"},
        "count": {"type": "integer", "default": 1},
    },
    "example": {"species": "cunninghamia_lanceolata", "dbh": 10.3, "height": 12.6},
}

REVIEW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["decision"],
    "properties": {
        "decision": {"enum": ["accepted", "rejected"]},
        "note": {"type": "string", "maxLength": 500},
    },
    "example": {"decision": "accepted", "note": "Re-measured on site: the tree is real."},
}

CALCULATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["period_start", "period_end"],
    "properties": {
        "period_start": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "period_end": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
    "description": "The buffer is the methodology's constant (at least 20 %), never a field.",
    "example": {"period_start": "2025-01-01", "period_end": "2026-12-31"},
}


def estimate_from(data: dict[str, Any]) -> dict[str, Any]:
    """Run the calculator on API or CLI fields; EstimateError for unusable input."""
    count = data.get("count", 1)
    if data.get("dbh") is None and not data.get("stems") and data.get("age") is not None:
        return project_tree(data["species"], data["age"], count=count).as_dict()
    # A measured tree's estimate uses neither an age nor a DBH given beside the stems, but
    # contradictory or absurd input is refused rather than silently ignored.
    problems = []
    if data.get("dbh") is not None and data.get("stems"):
        problems.append(
            {"field": "stems", "problem": "give dbh (one stem) or stems (each stem), not both"}
        )
    age, (low, high) = data.get("age"), AGE_RANGE
    if age is not None and not low <= age <= high:
        problems.append({"field": "age", "problem": f"must be between {low} and {high} years"})
    try:
        estimate = estimate_tree(
            data["species"],
            data.get("dbh"),
            data.get("height"),
            stems_cm=data.get("stems"),
            count=count,
        )
    except EstimateError as error:
        raise EstimateError(problems + error.problems) from error
    if problems:
        raise EstimateError(problems)
    return estimate.as_dict()


PRIMARY_SOURCE = {
    "species_model": ("agb", "bgb"),
    "species_equation": ("equation.agb_terms",),
    "generic": ("generic.a", "generic.wood_density"),
    "volume_route": ("volume",),
    "excluded": ("excluded_reason",),
}


def carbon_fraction(species: dict[str, Any]) -> dict[str, float] | None:
    """Carbon share of dry biomass above and below ground (None for excluded species)."""
    if species["route"] == "species_model":
        return {
            "above": species["carbon_fraction_above"],
            "below": species["carbon_fraction_below"],
        }
    params = {"species_equation": "equation", "generic": "generic", "volume_route": "volume"}
    if species["route"] not in params:
        return None
    fraction = species[params[species["route"]]]["carbon_fraction"]
    return {"above": fraction, "below": fraction}


def species_view(species: dict[str, Any]) -> dict[str, Any]:
    excluded = species["route"] == "excluded"
    sources = species.get("sources", {})
    return {
        "id": species["id"],
        "scientific_name": species["scientific_name"],
        "name_zh": species["name_zh"],
        "local_names": species["local_names"],
        "group": species["group"],
        "route": species["route"],
        "creditable": not excluded,
        "excluded_reason": species.get("excluded_reason"),
        "needs_height": False if excluded else needs_height(species),
        "estimates_height": "height_model" in species,
        "ladder_step": species.get("ladder_step"),
        "source": "; ".join(
            sources[key] for key in PRIMARY_SOURCE[species["route"]] if key in sources
        ),
        "fitted_range": species.get("fitted_range"),
        "carbon_fraction": carbon_fraction(species),
        "model_error": species.get("model_error"),
        "limits": species.get("limits"),
        "note": species.get("note"),
    }


FLAG_QUERIES = {
    "open": "SELECT * FROM flags WHERE village_id = ? AND decision IS NULL ORDER BY id",
    "reviewed": "SELECT * FROM flags WHERE village_id = ? AND decision IS NOT NULL ORDER BY id",
    "all": "SELECT * FROM flags WHERE village_id = ? ORDER BY id",
}


def flag_view(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "measurement_id",
        "tree_id",
        "code",
        "reason",
        "created_at",
        "decision",
        "reviewed_at",
        "review_note",
    )
    return {key: row[key] for key in keys}


bp = Blueprint("carbon", __name__, url_prefix="/api/v1")


@bp.get("/species")
@allow(PUBLIC)
def species():
    """Every species with its names, methodology route and whether it is credited."""
    method = load_method()
    return jsonify(
        method_version=method.version, species=[species_view(s) for s in method.document["species"]]
    )


@bp.get("/carbon/methods")
@allow(PUBLIC)
def methods():
    """The methodology parameter sets and their content hashes."""
    listed = [load_method(v) for v in available_versions()]
    return jsonify(
        current=load_method().version,
        methods=[{"version": m.version, "sha256": m.sha256} for m in listed],
    )


@bp.get("/carbon/methods/<version>")
@allow(PUBLIC)
def method(version: str):
    """One parameter set in full: every coefficient and its source (the PWA evaluates it)."""
    if version not in available_versions():
        raise ApiError(404, "not_found", f"No parameter set {version!r}.")
    found = load_method(version)
    return jsonify(version=found.version, sha256=found.sha256, document=found.document)


@bp.post("/carbon/estimate")
@allow(PUBLIC, body=ESTIMATE, csrf=False)
def estimate():
    """The calculator: a tree's stock from DBH and height, or a projection from age."""
    data = json_body(ESTIMATE)
    try:
        return jsonify(estimate_from(data))
    except EstimateError as error:
        raise ApiError(
            422, "validation_failed", "The tree cannot be estimated.", error.problems
        ) from error


@bp.get("/villages/<village_code>/flags")
@allow("admin", "bureau", "verifier", "measurer", scope="village")
def village_flags(village_code: str):
    """A village's plausibility flags (`?status=open|reviewed|all`, default open)."""
    status = request.args.get("status", "open")
    if status not in FLAG_QUERIES:
        raise ApiError(422, "validation_failed", "status is one of open, reviewed, all.")
    rows = get_db().query(FLAG_QUERIES[status], [g.village["id"]])
    return jsonify(flags=[flag_view(row) for row in rows])


@bp.post("/flags/<int:flag_id>/review")
@allow("admin", "bureau", "verifier", body=REVIEW)
def review(flag_id: int):
    """Accept a flagged record as it is, or reject it from crediting."""
    data = json_body(REVIEW)
    db = get_db()
    flag = (
        first(db, "SELECT village_id FROM flags WHERE id = ?", [flag_id])
        if (0 < flag_id < 2**63)
        else None
    )
    if flag is None:
        raise ApiError(404, "not_found", "No such flag.")
    if not villages.user_can_see(g.user, g.device, villages.get_village_by_id(flag["village_id"])):
        raise ApiError(403, "out_of_scope", "This belongs to a village outside your scope.")
    row = records.review_flag(db, flag_id, data["decision"], data.get("note"), g.user["id"])
    return jsonify(flag=flag_view(row))


@bp.post("/villages/<village_code>/credit-calculations")
@allow("admin", "bureau", "verifier", scope="village", body=CALCULATION)
def calculate(village_code: str):
    """Credit a village's period from measured growth: tonnes, buffer, carry per household."""
    data = json_body(CALCULATION)
    calculation_id = records.calculate_credit(
        get_db(),
        g.village,
        data["period_start"],
        data["period_end"],
        user_id=g.user["id"],
    )
    return jsonify(calculation=records.calculation_view(get_db(), calculation_id)), 201


@bp.get("/credit-calculations/<int:calculation_id>")
@allow("admin", "bureau", "verifier")
def calculation(calculation_id: int):
    """A credit calculation with its household and tree lines."""
    db = get_db()
    view = records.calculation_view(db, calculation_id) if 0 < calculation_id < 2**63 else None
    if view is None:
        raise ApiError(404, "not_found", "No such credit calculation.")
    if not villages.user_can_see(g.user, g.device, villages.get_village(view["village_code"])):
        raise ApiError(403, "out_of_scope", "This belongs to a village outside your scope.")
    return jsonify(calculation=view)
