"""Verification of a credited period: a seeded random sample, blind re-measurement of DBH
and height by an assigned verifier (or "not found / dead / felled"), and a ratio estimate of
verified to claimed growth that decides pass / partial / fail, with its PDF report.

The sample and the checks on a submitted re-measurement are shared with the village's
baseline check (server/registry/sampling.py). Each tree's verified growth is its stock from
the verifier's sizes, under the calculation's parameter set, less the same start the claim
used; issuance is the claimed total times the ratio's lower confidence bound
(server/registry/ratio.py). The per-tree tolerance, tied to a year of the tree's own claimed
growth, only marks trees in the report.
"""

import hashlib
import math
import secrets
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon.plausibility import years_between
from server.carbon.records import capped_stock_g, stored_method
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.push import triggers as push
from server.registry import chain_hooks, ratio, reports
from server.registry.sampling import (
    DBH_TOLERANCE_CM,
    HEIGHT_TOLERANCE_M,
    HEIGHT_TOLERANCE_SHARE,
    Remeasurements,
    check_verifier,
    draw_sample,
    store_remeasurement,
)

REMEASUREMENTS = Remeasurements(
    table="remeasurements",
    owner="verification_id",
    subject="verification",
    decided="这次核查已经结束。",
    outside="这棵树不在本次核查的样本里。",
    noun="verification",
)


def tolerances(claimed: dict[str, Any]) -> tuple[float, float]:
    """(DBH cm, height m) tolerances for a sampled tree: measurement error, or half a year of
    the growth claimed for it, whichever is larger."""
    years = max(years_between(claimed["start_time"], claimed["end_time"]), 1 / 12)
    dbh_growth = max(claimed["end_dbh_mm"] - claimed["start_dbh_mm"], 0) / 10
    dbh = max(DBH_TOLERANCE_CM, dbh_growth / years / 2)
    height = HEIGHT_TOLERANCE_M
    if claimed["end_height_cm"] is not None:
        height = max(height, HEIGHT_TOLERANCE_SHARE * claimed["end_height_cm"] / 100)
        if claimed["start_height_cm"] is not None:
            grown = max(claimed["end_height_cm"] - claimed["start_height_cm"], 0) / 100
            height = max(height, grown / years / 2)
    return dbh, height


def mismatches(claimed: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """Why a re-measurement differs from the claim: dbh, height, species, or the outcome."""
    if row["outcome"] != "measured":
        return [row["outcome"]]
    dbh_tol, height_tol = tolerances(claimed)
    reasons = []
    if abs(row["dbh_mm"] - claimed["end_dbh_mm"]) / 10 > dbh_tol + 1e-9:
        reasons.append("dbh")
    if (
        claimed["end_height_cm"] is not None
        and row["height_cm"] is not None
        and abs(row["height_cm"] - claimed["end_height_cm"]) / 100 > height_tol + 1e-9
    ):
        reasons.append("height")
    if row["species_id"] != claimed["species_id"]:
        reasons.append("species")
    return reasons


def get_verification(db: Database, verification_id: int) -> dict[str, Any] | None:
    if not 0 < verification_id < 2**63:
        return None
    return first(
        db,
        """SELECT v.id, v.calculation_id, v.village_id, v.seed, v.population, v.sample_size,
                  v.verifier_id, v.assigned_by, v.assigned_at, v.status, v.passed_trees,
                  v.failed_trees, v.scale_ppm, v.ratio_ppm, v.lower_bound_ppm,
                  v.decided_at, v.decision_note,
                  v.report_sha256, v.report_anchor_tx, vi.code AS village_code,
                  vi.name AS village_name, vi.county_id, c.period_start, c.period_end,
                  c.tonnes, c.method_version
           FROM verifications v JOIN villages vi ON vi.id = v.village_id
           JOIN credit_calculations c ON c.id = v.calculation_id WHERE v.id = ?""",
        [verification_id],
    )


def assign(
    db: Database,
    calculation: dict[str, Any],
    verifier_id: int,
    user_id: int | None,
    seed: str | None = None,
) -> dict[str, Any]:
    """Draw the sample of a credit calculation's trees and assign it to a verifier (a fresh
    random seed unless one is given: the demo's draws are the same every time)."""
    village = first(db, "SELECT * FROM villages WHERE id = ?", [calculation["village_id"]])
    check_verifier(db, verifier_id, village)
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
    seed = seed or secrets.token_hex(16)
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
    return store_remeasurement(
        db,
        REMEASUREMENTS,
        verification,
        data,
        verifier_id,
        lambda: claimed_line(db, verification["id"], data["tree_id"]),
        mismatches,
    )


def claimed_line(db: Database, verification_id: int, tree_id: str) -> dict[str, Any] | None:
    """What was claimed for a sampled tree: start and end sizes and stocks, its species."""
    return first(
        db,
        """SELECT vs.tree_id, t.species_id, l.stock_start_g, l.stock_end_g,
                  s.dbh_mm AS start_dbh_mm, s.height_cm AS start_height_cm,
                  s.client_time AS start_time, s.stems_mm AS start_stems_mm,
                  e.dbh_mm AS end_dbh_mm, e.height_cm AS end_height_cm,
                  e.client_time AS end_time
           FROM verification_samples vs JOIN verifications v ON v.id = vs.verification_id
           JOIN credit_tree_lines l
             ON l.calculation_id = v.calculation_id AND l.tree_id = vs.tree_id
           JOIN measurements s ON s.id = l.start_measurement_id
           JOIN measurements e ON e.id = vs.claimed_measurement_id
           JOIN trees t ON t.id = vs.tree_id
           WHERE vs.verification_id = ? AND vs.tree_id = ?""",
        [verification_id, tree_id],
    )


def verified_growth_g(db: Database, verification: dict[str, Any], tree_id: str) -> tuple:
    """(claimed, verified) growth in grams for one re-measured sampled tree, both from the
    claim's start and under the calculation's parameter set."""
    claimed = claimed_line(db, verification["id"], tree_id)
    row = first(
        db,
        "SELECT * FROM remeasurements WHERE verification_id = ? AND tree_id = ?",
        [verification["id"], tree_id],
    )
    claim = (claimed["stock_end_g"] or 0) - claimed["stock_start_g"]
    if row["outcome"] != "measured":
        return claim, 0
    method = stored_method(db, verification["method_version"])
    sizes = {"dbh_cm": row["dbh_mm"] / 10, "height_m": row["height_cm"] / 100, "stems_cm": None}
    species = row["species_id"] if row["species_id"] in method.species else claimed["species_id"]
    try:
        stock, _ = capped_stock_g(method, species, sizes)
    except ValueError:
        return claim, 0
    if species != claimed["species_id"]:
        stock = min(stock, claimed["stock_end_g"] or 0)  # another species confirms no more
    return claim, stock - claimed["stock_start_g"]


def decide(
    db: Database, verification: dict[str, Any], note: str | None, actor_name: str
) -> dict[str, Any]:
    """Close a fully re-measured sample: outcome, scale, and the signed PDF report."""
    if verification["status"] != "assigned":
        raise ApiError(409, "already_decided", REMEASUREMENTS.decided)
    results = reports.sample_results(db, verification["id"])
    missing = [r["tree_id"] for r in results if not r["remeasured"]]
    if missing:
        raise ApiError(
            409,
            "sample_incomplete",
            f"{len(missing)} sampled trees are not re-measured yet.",
            {"missing": missing},
        )
    failed = sum(1 for r in results if not r["within_tolerance"])
    pairs = [verified_growth_g(db, verification, r["tree_id"]) for r in results]
    found = ratio.estimate(pairs, verification["population"])
    status, scale = found.status, found.scale_ppm if found.status != "failed" else 0
    decided_at = now_iso()
    decided = verification | {
        "status": status,
        "passed_trees": len(results) - failed,
        "failed_trees": failed,
        "scale_ppm": scale,
        "ratio_ppm": found.ratio_ppm,
        "lower_bound_ppm": math.floor(found.lower_bound * 1_000_000),
        "claimed_g": found.claimed_g,
        "verified_g": found.verified_g,
        "decided_at": decided_at,
        "decision_note": note,
    }
    pdf = reports.render(decided, results, actor_name)
    digest = hashlib.sha256(pdf).hexdigest()
    with transaction(db):
        changed = db.execute(
            """UPDATE verifications SET status = ?, passed_trees = ?, failed_trees = ?,
                      scale_ppm = ?, ratio_ppm = ?, lower_bound_ppm = ?, decided_at = ?,
                      decision_note = ?, report_pdf = ?, report_sha256 = ?
                      WHERE id = ? AND status = 'assigned'""",
            [
                status,
                len(results) - failed,
                failed,
                scale,
                decided["ratio_ppm"],
                decided["lower_bound_ppm"],
                decided_at,
                note,
                pdf,
                digest,
                verification["id"],
            ],
        ).rowcount
        if not changed:
            raise ApiError(409, "already_decided", REMEASUREMENTS.decided)
        chain_hooks.queue_report(db, verification["id"], digest)
        audit.record(
            db,
            f"verification.{status}",
            f"verification:{verification['id']}",
            {
                "failed": failed,
                "sample": len(results),
                "ratio_ppm": decided["ratio_ppm"],
                "scale_ppm": scale,
                "report_sha256": digest,
            },
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
        "ratio_ppm",
        "lower_bound_ppm",
        "decided_at",
        "decision_note",
        "report_sha256",
        "report_anchor_tx",
    )
    return {key: verification[key] for key in keys}
