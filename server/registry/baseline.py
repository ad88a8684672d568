"""Baseline checks: a village's registration stock re-measured on a sample.

A tree's first credited period starts from its registration reading
(server/carbon/tree_anchors.py). Re-measuring the end of that period cannot see a baseline
recorded too small, which would credit growth that never happened. So soon after the
registration census a verifier re-measures, blind, a random sample of the trees not yet
checked (server/registry/sampling.py): x_i is the claimed registration stock, y_i the stock
from the verifier's sizes under the same parameter set. Over the sample the ratio R = Σy/Σx
and its one-sided 95 % upper bound U (server/registry/ratio.py) say how far the baselines
may fall short: by up to max(U − 1, 0) of the claimed stock (`excess_ppm`).

- A check fails when R > 1 / REJECT_RATIO (the claims are more than 15 % below what the
  verifier finds) or fewer than half the sample is found: the village re-registers.
- A first period issues only for trees a passed check covers (same registration reading),
  and its claimed growth is reduced by each tree's registration stock times its check's
  excess (`deduction_g`). Growth between registration and the check is deducted too, so a
  check done promptly costs least.
"""

import math
import secrets
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon import tree_anchors
from server.carbon.method import load_method
from server.carbon.records import capped_stock_g, stored_method
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.registry import ratio
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
    table="baseline_remeasurements",
    owner="check_id",
    subject="baseline_check",
    decided="这次基线复核已经结束。",
    outside="这棵树不在本次基线复核的样本里。",
    noun="check",
)

FAIL_ABOVE_RATIO = 1 / ratio.REJECT_RATIO

FIELDS = """b.id, b.village_id, b.method_version, b.seed, b.population, b.sample_size,
            b.verifier_id, b.assigned_at, b.status, b.found_trees, b.ratio_ppm,
            b.upper_bound_ppm, b.excess_ppm, b.decided_at, b.decision_note,
            v.code AS village_code, v.name AS village_name, v.county_id"""


def get_check(db: Database, check_id: int) -> dict[str, Any] | None:
    if not 0 < check_id < 2**63:
        return None
    return first(
        db,
        f"""SELECT {FIELDS} FROM baseline_checks b JOIN villages v ON v.id = b.village_id
            WHERE b.id = ?""",  # noqa: S608 - constant SQL
        [check_id],
    )


def village_checks(db: Database, village_id: int) -> list[dict[str, Any]]:
    return list(
        db.query(
            f"""SELECT {FIELDS} FROM baseline_checks b JOIN villages v ON v.id = b.village_id
                WHERE b.village_id = ? ORDER BY b.id""",  # noqa: S608 - constant SQL
            [village_id],
        )
    )


def unchecked_trees(db: Database, village_id: int) -> dict[str, str]:
    """{tree id: registration reading id} of the village's standing trees of credited species
    never credited in an issued period whose registration reading no open or passed check
    covers (one query for the village)."""
    method = load_method()
    rows = db.query(
        f"""WITH firsts AS (
                SELECT t.id, t.species_id,
                       (SELECT m.id FROM measurements m WHERE m.tree_id = t.id
                          AND {tree_anchors.NOT_REJECTED} ORDER BY m.rowid LIMIT 1) AS reading
                FROM trees t JOIN households h ON h.id = t.household_id
                WHERE h.village_id = ? AND t.status = 'alive'
                  AND NOT EXISTS (SELECT 1 FROM credit_tree_lines l
                                  JOIN credit_calculations c ON c.id = l.calculation_id
                                  WHERE l.tree_id = t.id AND c.status = 'issued'))
            SELECT f.id, f.species_id, f.reading FROM firsts f
            WHERE f.reading IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM baseline_check_trees bt JOIN baseline_checks b ON b.id = bt.check_id
                WHERE bt.tree_id = f.id AND bt.baseline_measurement_id = f.reading
                  AND b.status IN ('assigned', 'passed'))
            ORDER BY f.id""",  # noqa: S608 - constant SQL
        [village_id],
    )
    found = {}
    for row in rows:
        species = method.species.get(row["species_id"])
        if species is not None and species["route"] != "excluded":  # never credited: skip
            found[row["id"]] = row["reading"]
    return found


def _covered(db: Database, tree_id: str, measurement_id: str) -> dict | None:
    """The latest passed check that covers this registration reading."""
    return first(
        db,
        """SELECT b.id, b.excess_ppm FROM baseline_check_trees bt
           JOIN baseline_checks b ON b.id = bt.check_id
           WHERE bt.tree_id = ? AND bt.baseline_measurement_id = ? AND b.status = 'passed'
           ORDER BY b.id DESC LIMIT 1""",
        [tree_id, measurement_id],
    )


def assign(
    db: Database,
    village: dict[str, Any],
    verifier_id: int,
    user_id: int | None,
    seed: str | None = None,
) -> dict[str, Any]:
    """Draw a sample of the village's unchecked registration readings for a verifier (a
    fresh random seed unless one is given: the demo's draws are the same every time)."""
    check_verifier(db, verifier_id, village)
    if first(
        db,
        "SELECT 1 FROM baseline_checks WHERE village_id = ? AND status = 'assigned'",
        [village["id"]],
    ):
        raise ApiError(409, "conflict", "这个村已有一次基线复核在进行中。")
    population = unchecked_trees(db, village["id"])
    if not population:
        raise ApiError(409, "nothing_to_check", "这个村没有待复核基线的树。")
    seed = seed or secrets.token_hex(16)
    sample = set(draw_sample(list(population), seed))
    with transaction(db):
        check_id = (
            db["baseline_checks"]
            .insert(
                {
                    "village_id": village["id"],
                    "method_version": load_method().version,
                    "seed": seed,
                    "population": len(population),
                    "sample_size": len(sample),
                    "verifier_id": verifier_id,
                    "assigned_by": user_id,
                    "assigned_at": now_iso(),
                }
            )
            .last_pk
        )
        db["baseline_check_trees"].insert_all(
            {
                "check_id": check_id,
                "tree_id": tree,
                "baseline_measurement_id": reading,
                "sampled": int(tree in sample),
            }
            for tree, reading in population.items()
        )
        audit.record(
            db,
            "baseline_check.assigned",
            f"baseline_check:{check_id}",
            {"verifier": verifier_id, "seed": seed, "population": len(population)},
        )
    return get_check(db, check_id)


def blind_trees(db: Database, check_id: int) -> list[dict[str, Any]]:
    """The sample as the verifier sees it: where each tree is, never its claimed sizes."""
    return list(
        db.query(
            """SELECT t.id AS tree_id, t.tag, h.code AS household_code, t.species_id,
                      s.name_zh AS species_name, t.position, m.latitude, m.longitude,
                      r.client_id AS remeasured_client_id
               FROM baseline_check_trees bt JOIN trees t ON t.id = bt.tree_id
               JOIN households h ON h.id = t.household_id
               JOIN species s ON s.id = t.species_id
               JOIN measurements m ON m.id = bt.baseline_measurement_id
               LEFT JOIN baseline_remeasurements r
                 ON r.check_id = bt.check_id AND r.tree_id = bt.tree_id
               WHERE bt.check_id = ? AND bt.sampled = 1 ORDER BY h.code, t.id""",
            [check_id],
        )
    )


def claimed(db: Database, check_id: int, tree_id: str) -> dict[str, Any] | None:
    """A sampled tree's registration reading."""
    return first(
        db,
        """SELECT bt.tree_id, t.species_id, m.* FROM baseline_check_trees bt
           JOIN trees t ON t.id = bt.tree_id
           JOIN measurements m ON m.id = bt.baseline_measurement_id
           WHERE bt.check_id = ? AND bt.tree_id = ? AND bt.sampled = 1""",
        [check_id, tree_id],
    )


def remeasure(
    db: Database, check: dict[str, Any], data: dict[str, Any], verifier_id: int
) -> tuple[dict[str, Any], bool]:
    """Store one blind re-measurement; the same `client_id` again returns the stored one."""
    return store_remeasurement(
        db,
        REMEASUREMENTS,
        check,
        data,
        verifier_id,
        lambda: claimed(db, check["id"], data["tree_id"]),
        mismatches,
    )


def mismatches(reading: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """Why a re-measurement differs from the registration reading beyond measurement error."""
    if row["outcome"] != "measured":
        return [row["outcome"]]
    reasons = []
    if abs(row["dbh_mm"] - reading["dbh_mm"]) / 10 > DBH_TOLERANCE_CM + 1e-9:
        reasons.append("dbh")
    if reading["height_cm"] is not None:
        tolerance = max(HEIGHT_TOLERANCE_M, HEIGHT_TOLERANCE_SHARE * reading["height_cm"] / 100)
        if abs(row["height_cm"] - reading["height_cm"]) / 100 > tolerance + 1e-9:
            reasons.append("height")
    if row["species_id"] != reading["species_id"]:
        reasons.append("species")
    return reasons


def stock_pairs(db: Database, check: dict[str, Any]) -> list[tuple[int, int]]:
    """(claimed, re-measured) registration stock in grams of each sampled tree found."""
    method = stored_method(db, check["method_version"])
    pairs = []
    for row in db.query(
        """SELECT r.*, bt.baseline_measurement_id FROM baseline_remeasurements r
           JOIN baseline_check_trees bt ON bt.check_id = r.check_id AND bt.tree_id = r.tree_id
           WHERE r.check_id = ? AND r.outcome = 'measured' ORDER BY r.tree_id""",
        [check["id"]],
    ):
        reading = claimed(db, check["id"], row["tree_id"])
        species = reading["species_id"]
        sizes = {"dbh_cm": row["dbh_mm"] / 10, "height_m": row["height_cm"] / 100}
        try:
            claim, _ = capped_stock_g(method, species, tree_anchors.sizes(reading))
            found, _ = capped_stock_g(method, species, sizes | {"stems_cm": None})
        except (KeyError, ValueError):
            continue  # a species this parameter set does not credit: no stock to compare
        pairs.append((claim, found))
    return pairs


def decide(db: Database, check: dict[str, Any], note: str | None) -> dict[str, Any]:
    """Close a fully re-measured sample: passed (with its excess) or failed."""
    if check["status"] != "assigned":
        raise ApiError(409, "already_decided", REMEASUREMENTS.decided)
    missing = db.execute(
        """SELECT count(*) FROM baseline_check_trees bt WHERE bt.check_id = ? AND bt.sampled = 1
           AND NOT EXISTS (SELECT 1 FROM baseline_remeasurements r
                           WHERE r.check_id = bt.check_id AND r.tree_id = bt.tree_id)""",
        [check["id"]],
    ).fetchone()[0]
    if missing:
        raise ApiError(409, "sample_incomplete", f"还有 {missing} 棵样本树没有复测。")
    pairs = stock_pairs(db, check)
    found = ratio.estimate(pairs, check["population"])
    enough = len(pairs) >= max(1, math.ceil(check["sample_size"] / 2))
    passed = enough and found.ratio <= FAIL_ABOVE_RATIO
    upper = found.upper_bound
    decided = {
        "status": "passed" if passed else "failed",
        "found_trees": len(pairs),
        "ratio_ppm": math.floor(found.ratio * 1_000_000) if pairs else None,
        "upper_bound_ppm": math.ceil(upper * 1_000_000) if math.isfinite(upper) else None,
        "excess_ppm": max(math.ceil((upper - 1) * 1_000_000), 0) if passed else None,
        "decided_at": now_iso(),
        "decision_note": note,
    }
    with transaction(db):
        changed = db.execute(
            """UPDATE baseline_checks SET status = ?, found_trees = ?, ratio_ppm = ?,
                      upper_bound_ppm = ?, excess_ppm = ?, decided_at = ?, decision_note = ?
               WHERE id = ? AND status = 'assigned'""",
            [*decided.values(), check["id"]],
        ).rowcount
        if not changed:
            raise ApiError(409, "already_decided", REMEASUREMENTS.decided)
        audit.record(
            db,
            f"baseline_check.{decided['status']}",
            f"baseline_check:{check['id']}",
            {key: decided[key] for key in ("found_trees", "ratio_ppm", "excess_ppm")},
        )
    return get_check(db, check["id"])


def deduction_g(db: Database, calculation_id: int) -> tuple[int, list[str]]:
    """(grams to take off a calculation's claimed growth, trees no passed check covers) for
    the trees whose period starts from their registration reading."""
    total, unchecked = 0, []
    for line in db.query(
        """SELECT l.tree_id, l.start_measurement_id, l.stock_start_g
           FROM credit_tree_lines l JOIN credit_calculations c ON c.id = l.calculation_id
           WHERE l.calculation_id = ? AND l.end_measurement_id IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM credit_tree_lines p
                             JOIN credit_calculations pc ON pc.id = p.calculation_id
                             WHERE p.tree_id = l.tree_id AND pc.status = 'issued'
                               AND pc.period_end < c.period_start)
           ORDER BY l.tree_id""",
        [calculation_id],
    ):
        check = _covered(db, line["tree_id"], line["start_measurement_id"])
        if check is None:
            unchecked.append(line["tree_id"])
        else:
            total += -(-line["stock_start_g"] * check["excess_ppm"] // 1_000_000)
    return total, unchecked


def view(check: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "village_code",
        "village_name",
        "method_version",
        "seed",
        "population",
        "sample_size",
        "verifier_id",
        "assigned_at",
        "status",
        "found_trees",
        "ratio_ppm",
        "upper_bound_ppm",
        "excess_ppm",
        "decided_at",
        "decision_note",
    )
    return {"kind": "baseline"} | {key: check[key] for key in keys}
