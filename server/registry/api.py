"""The registry API for staff: verification (assign, blind re-measure, decide, report),
issuance into a bundle and reversals. The verifier's PWA screen uses the verifier routes."""

from flask import Blueprint, Response, g, jsonify

from server import villages
from server.access import allow
from server.db import first, get_db
from server.errors import ApiError
from server.registry import baseline, bundles, issuance, verification
from server.validation import json_body

CLIENT_ID = {"type": "string", "pattern": "^[0-9A-Za-z-]{16,40}$"}

ASSIGN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["verifier_id"],
    "properties": {"verifier_id": {"type": "integer", "minimum": 1}},
    "example": {"verifier_id": 4},
}

REMEASURE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["client_id", "tree_id", "measured_at"],
    "properties": {
        "client_id": CLIENT_ID | {"description": "made on the phone; a retry sends it again"},
        "tree_id": CLIENT_ID,
        "outcome": {
            "type": "string",
            "enum": ["measured", "not_found", "dead", "felled"],
            "description": "measured (the default) needs dbh_cm, height_m and species_id; "
            "the others give none of them",
        },
        "dbh_cm": {"type": "number", "minimum": 0.1, "maximum": 500},
        "height_m": {"type": "number", "minimum": 0.1, "maximum": 100},
        "species_id": {"type": "string", "maxLength": 64},
        "measured_at": {"type": "string", "maxLength": 40, "description": "ISO-8601 with zone"},
    },
    "example": {
        "client_id": "0190f0a0-0000-7000-8000-0000000000c1",
        "tree_id": "0190f0a0-0000-7000-8000-00000000000a",
        "outcome": "measured",
        "dbh_cm": 11.0,
        "height_m": 9.5,
        "species_id": "cunninghamia_lanceolata",
        "measured_at": "2026-10-02T09:30:00+08:00",
    },
}

DECIDE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"note": {"type": "string", "maxLength": 500}},
    "example": {"note": "样本全部复测完毕。"},
}

ISSUE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["bundle_id"],
    "properties": {"bundle_id": {"type": "integer", "minimum": 1}},
    "example": {"bundle_id": 1},
}

REVERSE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tree_ids"],
    "properties": {
        "tree_ids": {"type": "array", "items": CLIENT_ID, "minItems": 1, "maxItems": 1000}
    },
    "example": {"tree_ids": ["0190f0a0-0000-7000-8000-00000000000a"]},
}

bp = Blueprint("registry", __name__, url_prefix="/api/v1")


def _in_scope(village_id: int) -> None:
    if not villages.user_can_see(g.user, g.device, villages.get_village_by_id(village_id)):
        raise ApiError(403, "out_of_scope", "This belongs to a village outside your scope.")


def _verification(verification_id: int) -> dict:
    """The verification, if the caller may see it: verifiers only their own samples."""
    found = verification.get_verification(get_db(), verification_id)
    if found is None:
        raise ApiError(404, "not_found", "No such verification.")
    if g.user["role"] == "verifier" and found["verifier_id"] != g.user["id"]:
        raise ApiError(403, "not_assigned", "This sample is assigned to another verifier.")
    _in_scope(found["village_id"])
    return found


@bp.post("/credit-calculations/<int:calculation_id>/verification")
@allow("admin", "bureau", body=ASSIGN)
def assign(calculation_id: int):
    """Draw a calculation's random sample (recorded seed) and assign it to a verifier."""
    data = json_body(ASSIGN)
    db = get_db()
    calc = (
        first(db, "SELECT * FROM credit_calculations WHERE id = ?", [calculation_id])
        if 0 < calculation_id < 2**63
        else None
    )
    if calc is None:
        raise ApiError(404, "not_found", "No such credit calculation.")
    _in_scope(calc["village_id"])
    found = verification.assign(db, calc, data["verifier_id"], g.user["id"])
    return jsonify(verification=verification.view(found)), 201


@bp.get("/verifier/assignments")
@allow("verifier")
def my_assignments():
    """The signed-in verifier's open samples, each with its trees (blind), for offline use."""
    db = get_db()
    rows = db.query(
        "SELECT id FROM verifications WHERE verifier_id = ? AND status = 'assigned' ORDER BY id",
        [g.user["id"]],
    )
    listed = []
    for row in rows:
        found = verification.get_verification(db, row["id"])
        listed.append(verification.view(found) | {"trees": verification.blind_trees(db, row["id"])})
    checks = [
        baseline.view(baseline.get_check(db, row["id"]))
        | {"trees": baseline.blind_trees(db, row["id"])}
        for row in db.query(
            """SELECT id FROM baseline_checks WHERE verifier_id = ? AND status = 'assigned'
               ORDER BY id""",
            [g.user["id"]],
        )
    ]
    return jsonify(assignments=listed, baseline_checks=checks)


@bp.get("/verifications/<int:verification_id>")
@allow("admin", "bureau", "verifier")
def show(verification_id: int):
    """A verification: sample, status, outcome and report hash."""
    return jsonify(verification=verification.view(_verification(verification_id)))


@bp.get("/verifications/<int:verification_id>/trees")
@allow("admin", "bureau", "verifier")
def sample_trees(verification_id: int):
    """The sampled trees, blind: id, tag, household, species, position, GPS, no sizes."""
    found = _verification(verification_id)
    return jsonify(trees=verification.blind_trees(get_db(), found["id"]))


@bp.post("/verifications/<int:verification_id>/remeasurements")
@allow("verifier", body=REMEASURE)
def remeasure(verification_id: int):
    """Submit one blind re-measurement (idempotent on `client_id`)."""
    data = json_body(REMEASURE)
    found = _verification(verification_id)
    receipt, created = verification.remeasure(get_db(), found, data, g.user["id"])
    return jsonify(remeasurement=receipt, replayed=not created), 201 if created else 200


@bp.post("/verifications/<int:verification_id>/decision")
@allow("verifier", body=DECIDE)
def decide(verification_id: int):
    """Close a fully re-measured sample: passed, partial or failed, with the PDF report."""
    data = json_body(DECIDE)
    found = _verification(verification_id)
    decided = verification.decide(get_db(), found, data.get("note"), g.user["display_name"])
    return jsonify(verification=verification.view(decided))


@bp.get("/verifications/<int:verification_id>/report.pdf")
@allow("admin", "bureau", "verifier")
def report(verification_id: int):
    """The verification report (PDF) whose sha256 is stored for anchoring."""
    found = _verification(verification_id)
    row = first(get_db(), "SELECT report_pdf FROM verifications WHERE id = ?", [found["id"]])
    if row is None or row["report_pdf"] is None:
        raise ApiError(404, "not_found", "This verification has no report yet.")
    return Response(
        row["report_pdf"],
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="verification-{verification_id}.pdf"'},
    )


@bp.post("/verifications/<int:verification_id>/issuance")
@allow("admin", body=ISSUE)
def issue(verification_id: int):
    """Issue a verified period's whole tonnes as serials into a bundle, buffer withheld."""
    data = json_body(ISSUE)
    db = get_db()
    found = _verification(verification_id)
    bundle = bundles.get_bundle(db, data["bundle_id"])
    if bundle is None:
        raise ApiError(
            422,
            "validation_failed",
            "No such bundle.",
            [{"field": "bundle_id", "problem": "no such bundle"}],
        )
    return jsonify(issuance=issuance.issue(db, found, bundle, g.user["id"])), 201


@bp.get("/issuances/<int:issuance_id>")
@allow("admin", "bureau", "finance")
def show_issuance(issuance_id: int):
    """An issuance: its serial range, buffer, each household's grams and reversals."""
    found = issuance.issuance_view(get_db(), issuance_id)
    if found is None:
        raise ApiError(404, "not_found", "No such issuance.")
    if g.user["role"] == "bureau" and g.user["county_id"] != found["county_id"]:
        raise ApiError(403, "out_of_scope", "This belongs to a village outside your scope.")
    return jsonify(issuance=found)


@bp.post("/issuances/<int:issuance_id>/reversals")
@allow("admin", body=REVERSE)
def reverse(issuance_id: int):
    """Trees of an issued period died or were felled: cancel tonnes, buffer first."""
    data = json_body(REVERSE)
    db = get_db()
    found = issuance.issuance_view(db, issuance_id)
    if found is None:
        raise ApiError(404, "not_found", "No such issuance.")
    return jsonify(reversal=issuance.reverse(db, found, data["tree_ids"], g.user["id"])), 201


# --- baseline checks (server/registry/baseline.py) ----------------------------------------


def _check(check_id: int) -> dict:
    """The baseline check, if the caller may see it: verifiers only their own."""
    found = baseline.get_check(get_db(), check_id)
    if found is None:
        raise ApiError(404, "not_found", "No such baseline check.")
    if g.user["role"] == "verifier" and found["verifier_id"] != g.user["id"]:
        raise ApiError(403, "not_assigned", "This sample is assigned to another verifier.")
    _in_scope(found["village_id"])
    return found


def _village(village_code: str) -> dict:
    found = villages.get_village(village_code)
    if found is None:
        raise ApiError(404, "not_found", "No such village.")
    _in_scope(found["id"])
    return found


@bp.get("/villages/<village_code>/baseline-checks")
@allow("admin", "bureau")
def village_baseline_checks(village_code: str):
    """The village's baseline checks, and how many registered trees no check covers yet."""
    db = get_db()
    found = _village(village_code)
    checks = [baseline.view(row) for row in baseline.village_checks(db, found["id"])]
    unchecked = len(baseline.unchecked_trees(db, found["id"]))
    return jsonify(baseline_checks=checks, unchecked_trees=unchecked)


@bp.post("/villages/<village_code>/baseline-checks")
@allow("admin", "bureau", body=ASSIGN)
def assign_baseline_check(village_code: str):
    """Draw a sample of the registration readings no check covers and assign a verifier."""
    data = json_body(ASSIGN)
    db = get_db()
    found = baseline.assign(db, _village(village_code), data["verifier_id"], g.user["id"])
    return jsonify(baseline_check=baseline.view(found)), 201


@bp.get("/baseline-checks/<int:check_id>")
@allow("admin", "bureau", "verifier")
def show_baseline_check(check_id: int):
    """A baseline check: sample, status, ratio, upper bound and the excess it deducts."""
    return jsonify(baseline_check=baseline.view(_check(check_id)))


@bp.get("/baseline-checks/<int:check_id>/trees")
@allow("admin", "bureau", "verifier")
def baseline_check_trees(check_id: int):
    """The sampled trees, blind: id, tag, household, species, position, GPS, no sizes."""
    found = _check(check_id)
    return jsonify(trees=baseline.blind_trees(get_db(), found["id"]))


@bp.post("/baseline-checks/<int:check_id>/remeasurements")
@allow("verifier", body=REMEASURE)
def remeasure_baseline(check_id: int):
    """Submit one blind re-measurement of a registered tree (idempotent on `client_id`)."""
    data = json_body(REMEASURE)
    receipt, created = baseline.remeasure(get_db(), _check(check_id), data, g.user["id"])
    return jsonify(remeasurement=receipt, replayed=not created), 201 if created else 200


@bp.post("/baseline-checks/<int:check_id>/decision")
@allow("verifier", body=DECIDE)
def decide_baseline_check(check_id: int):
    """Close a fully re-measured baseline sample: passed (with its excess) or failed."""
    data = json_body(DECIDE)
    decided = baseline.decide(get_db(), _check(check_id), data.get("note"))
    return jsonify(baseline_check=baseline.view(decided))
