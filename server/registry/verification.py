"""Verification of a credited period: a seeded random sample, blind re-measurement by an
assigned verifier, a tolerance check, and pass / partial / fail with its PDF report.

The sample is reproducible: `random.Random(seed).sample(sorted tree ids, size)`, with the
seed stored. Tolerance is DBH within ±0.5 cm or ±3 % (whichever is larger) and the same
species. No failures: passed. Failures in at most `REJECT_ABOVE_PCT` % of the sample:
partial, and issuance shrinks pro rata to the share that passed. More: failed, no issuance.
"""

import hashlib
import math
import random
import secrets
from typing import Any

from sqlite_utils import Database

from server import audit
from server.clock import now_iso, parse_client_time
from server.db import first, transaction
from server.errors import ApiError
from server.push import triggers as push

SAMPLE_PCT, SAMPLE_MIN = 5, 30
TOLERANCE_MM, TOLERANCE_PCT = 5, 3
REJECT_ABOVE_PCT = 20


def sample_size(population: int) -> int:
    """At least 5 % of the trees and at least 30 (all of them when fewer)."""
    return min(population, max(SAMPLE_MIN, math.ceil(population * SAMPLE_PCT / 100)))


def draw_sample(tree_ids: list[str], seed: str) -> list[str]:
    """The sample a seed picks; anyone holding the seed and the tree list can redraw it."""
    population = sorted(tree_ids)
    return sorted(random.Random(seed).sample(population, sample_size(len(population))))


def within_tolerance(claimed_mm: int, measured_mm: int) -> bool:
    """DBH within ±0.5 cm or ±3 % of the claimed value, whichever is larger."""
    return abs(measured_mm - claimed_mm) * 100 <= max(
        TOLERANCE_MM * 100, claimed_mm * TOLERANCE_PCT
    )


def get_verification(db: Database, verification_id: int) -> dict[str, Any] | None:
    if not 0 < verification_id < 2**63:
        return None
    return first(
        db,
        """SELECT v.id, v.calculation_id, v.village_id, v.seed, v.population, v.sample_size,
                  v.verifier_id, v.assigned_by, v.assigned_at, v.status, v.passed_trees,
                  v.failed_trees, v.scale_ppm, v.decided_at, v.decision_note,
                  v.report_sha256, v.report_anchor_tx, vi.code AS village_code,
                  vi.name AS village_name, vi.county_id, c.period_start, c.period_end,
                  c.tonnes, c.method_version
           FROM verifications v JOIN villages vi ON vi.id = v.village_id
           JOIN credit_calculations c ON c.id = v.calculation_id WHERE v.id = ?""",
        [verification_id],
    )


def assign(
    db: Database, calculation: dict[str, Any], verifier_id: int, user_id: int | None
) -> dict[str, Any]:
    """Draw the sample of a credit calculation's trees and assign it to a verifier."""
    verifier = first(db, "SELECT * FROM users WHERE id = ?", [verifier_id])
    village = first(db, "SELECT * FROM villages WHERE id = ?", [calculation["village_id"]])
    if verifier is None or verifier["role"] != "verifier" or not verifier["active"]:
        raise ApiError(422, "validation_failed", "verifier_id must name an active verifier.")
    if verifier["county_id"] != village["county_id"]:
        raise ApiError(422, "validation_failed", "The verifier works in another county.")
    if calculation["status"] != "draft":
        raise ApiError(409, "conflict", "This calculation is already issued or void.")
    if first(db, "SELECT 1 FROM verifications WHERE calculation_id = ?", [calculation["id"]]):
        raise ApiError(409, "conflict", "This calculation already has a verification.")
    lines = {
        row["tree_id"]: row["end_measurement_id"]
        for row in db.query(
            """SELECT tree_id, end_measurement_id FROM credit_tree_lines
               WHERE calculation_id = ? AND end_measurement_id IS NOT NULL""",
            [calculation["id"]],
        )
    }
    seed = secrets.token_hex(16)
    sample = draw_sample(list(lines), seed)
    with transaction(db):
        verification_id = (
            db["verifications"]
            .insert(
                {
                    "calculation_id": calculation["id"],
                    "village_id": village["id"],
                    "seed": seed,
                    "population": len(lines),
                    "sample_size": len(sample),
                    "verifier_id": verifier_id,
                    "assigned_by": user_id,
                    "assigned_at": now_iso(),
                }
            )
            .last_pk
        )
        db["verification_samples"].insert_all(
            {"verification_id": verification_id, "tree_id": t, "claimed_measurement_id": lines[t]}
            for t in sample
        )
        audit.record(
            db,
            "verification.assigned",
            f"verification:{verification_id}",
            {
                "calculation": calculation["id"],
                "verifier": verifier_id,
                "seed": seed,
                "population": len(lines),
                "sample": len(sample),
            },
        )
        push.sample_assigned(db, verification_id, verifier_id, village["name"], len(sample))
    return get_verification(db, verification_id)


def blind_trees(db: Database, verification_id: int) -> list[dict[str, Any]]:
    """The sample as the verifier sees it: where each tree is and what it is, never the
    measured sizes being checked."""
    return list(
        db.query(
            """SELECT t.id AS tree_id, t.tag, h.code AS household_code, t.species_id,
                      s.name_zh AS species_name, t.position, m.latitude, m.longitude,
                      r.client_id AS remeasured_client_id
               FROM verification_samples vs JOIN trees t ON t.id = vs.tree_id
               JOIN households h ON h.id = t.household_id
               JOIN species s ON s.id = t.species_id
               JOIN measurements m ON m.id = vs.claimed_measurement_id
               LEFT JOIN remeasurements r
                 ON r.verification_id = vs.verification_id AND r.tree_id = vs.tree_id
               WHERE vs.verification_id = ? ORDER BY h.code, t.id""",
            [verification_id],
        )
    )


def remeasure(
    db: Database, verification: dict[str, Any], data: dict[str, Any], verifier_id: int
) -> tuple[dict[str, Any], bool]:
    """Store one blind re-measurement; the same `client_id` again returns the stored one.

    Returns (receipt, created). The receipt does not say whether the tree passed."""
    stored = first(db, "SELECT * FROM remeasurements WHERE client_id = ?", [data["client_id"]])
    if stored is not None:
        if stored["verification_id"] != verification["id"] or stored["tree_id"] != data["tree_id"]:
            raise ApiError(409, "conflict", "This client_id was used for another tree.")
        return _receipt(stored), False
    if verification["status"] != "assigned":
        raise ApiError(409, "already_decided", "This verification is already decided.")
    claimed = first(
        db,
        """SELECT m.dbh_mm, t.species_id FROM verification_samples vs
           JOIN measurements m ON m.id = vs.claimed_measurement_id
           JOIN trees t ON t.id = vs.tree_id
           WHERE vs.verification_id = ? AND vs.tree_id = ?""",
        [verification["id"], data["tree_id"]],
    )
    if claimed is None:
        raise ApiError(
            422,
            "not_in_sample",
            "This tree is not in the verification sample.",
            [{"field": "tree_id", "problem": "not in this verification's sample"}],
        )
    if first(db, "SELECT 1 FROM species WHERE id = ?", [data["species_id"]]) is None:
        raise ApiError(
            422,
            "validation_failed",
            f"Unknown species {data['species_id']!r}.",
            [{"field": "species_id", "problem": "unknown species"}],
        )
    try:
        measured_at = parse_client_time(data["measured_at"])
    except ValueError as error:
        raise ApiError(
            422,
            "validation_failed",
            "measured_at needs a date, time and time zone.",
            [{"field": "measured_at", "problem": str(error)}],
        ) from error
    dbh_mm = round(data["dbh_cm"] * 10)
    reasons = []
    if not within_tolerance(claimed["dbh_mm"], dbh_mm):
        reasons.append("dbh")
    if data["species_id"] != claimed["species_id"]:
        reasons.append("species")
    row = {
        "client_id": data["client_id"],
        "verification_id": verification["id"],
        "tree_id": data["tree_id"],
        "dbh_mm": dbh_mm,
        "species_id": data["species_id"],
        "measured_at": measured_at,
        "received_at": now_iso(),
        "verifier_id": verifier_id,
        "within_tolerance": int(not reasons),
        "reason": ",".join(reasons) or None,
    }
    with transaction(db):
        if first(
            db,
            "SELECT 1 FROM remeasurements WHERE verification_id = ? AND tree_id = ?",
            [verification["id"], data["tree_id"]],
        ):
            raise ApiError(409, "already_remeasured", "This tree was already re-measured.")
        db["remeasurements"].insert(row)
        audit.record(
            db,
            "verification.remeasured",
            f"verification:{verification['id']}",
            {"tree": data["tree_id"], "client_id": data["client_id"]},
        )
    return _receipt(row), True


def _receipt(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_id": row["client_id"],
        "tree_id": row["tree_id"],
        "received_at": row["received_at"],
    }


def outcome(sample: int, failed: int) -> tuple[str, int]:
    """(status, share of tonnes to issue in parts per million) for a sample's failures."""
    if sample == 0 or failed == 0:
        return "passed", 1_000_000
    if failed * 100 > sample * REJECT_ABOVE_PCT:
        return "failed", 0
    return "partial", (sample - failed) * 1_000_000 // sample


def decide(
    db: Database, verification: dict[str, Any], note: str | None, actor_name: str
) -> dict[str, Any]:
    """Close a fully re-measured sample: outcome, scale, and the signed PDF report."""
    from server.registry import ledger, reports

    if verification["status"] != "assigned":
        raise ApiError(409, "already_decided", "This verification is already decided.")
    results = reports.sample_results(db, verification["id"])
    missing = [r["tree_id"] for r in results if r["measured_mm"] is None]
    if missing:
        raise ApiError(
            409,
            "sample_incomplete",
            f"{len(missing)} sampled trees are not re-measured yet.",
            {"missing": missing},
        )
    failed = sum(1 for r in results if not r["within_tolerance"])
    status, scale = outcome(len(results), failed)
    decided_at = now_iso()
    decided = verification | {
        "status": status,
        "passed_trees": len(results) - failed,
        "failed_trees": failed,
        "scale_ppm": scale,
        "decided_at": decided_at,
        "decision_note": note,
    }
    pdf = reports.render(decided, results, actor_name)
    digest = hashlib.sha256(pdf).hexdigest()
    with transaction(db):
        changed = db.execute(
            """UPDATE verifications SET status = ?, passed_trees = ?, failed_trees = ?,
                      scale_ppm = ?, decided_at = ?, decision_note = ?, report_pdf = ?,
                      report_sha256 = ? WHERE id = ? AND status = 'assigned'""",
            [
                status,
                len(results) - failed,
                failed,
                scale,
                decided_at,
                note,
                pdf,
                digest,
                verification["id"],
            ],
        ).rowcount
        if not changed:
            raise ApiError(409, "already_decided", "This verification is already decided.")
        ledger.queue_report(db, verification["id"], digest)
        audit.record(
            db,
            f"verification.{status}",
            f"verification:{verification['id']}",
            {"failed": failed, "sample": len(results), "report_sha256": digest},
        )
    return get_verification(db, verification["id"])


def view(verification: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "calculation_id",
        "village_code",
        "village_name",
        "period_start",
        "period_end",
        "method_version",
        "seed",
        "population",
        "sample_size",
        "verifier_id",
        "assigned_at",
        "status",
        "passed_trees",
        "failed_trees",
        "scale_ppm",
        "decided_at",
        "decision_note",
        "report_sha256",
        "report_anchor_tx",
    )
    return {key: verification[key] for key in keys}
