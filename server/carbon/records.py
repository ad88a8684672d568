"""Carbon records in the database: each measurement's estimate and flags, flag review, and
credit calculations that keep every input line so any figure can be recomputed."""

import json
from datetime import date, timedelta
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon import plausibility
from server.carbon.crediting import TreeGrowth, credit_period
from server.carbon.estimate import EstimateError, estimate_tree, to_grams
from server.carbon.method import Method, canonical_json, load_method
from server.clock import now_iso
from server.db import first, insert, transaction
from server.errors import ApiError
from server.push import triggers as push

# Estimate flags that are information, not a reason to hold a record for review.
INFORMATION_ONLY = {"generic_route", "projection"}


def register_method(db: Database, method: Method) -> None:
    """Keep the parameter set in the database, so stored figures name what made them."""
    if first(db, "SELECT 1 FROM methods WHERE version = ?", [method.version]) is None:
        db["methods"].insert(
            {
                "version": method.version,
                "sha256": method.sha256,
                "document": canonical_json(method.document).decode(),
                "registered_at": now_iso(),
            }
        )


def _measurement(db: Database, measurement_id: str) -> dict[str, Any]:
    return first(
        db,
        """SELECT m.*, t.species_id, t.household_id, h.village_id
                        FROM measurements m JOIN trees t ON t.id = m.tree_id
                        JOIN households h ON h.id = t.household_id WHERE m.id = ?""",
        [measurement_id],
    )


def _sizes(row: dict[str, Any]) -> dict[str, Any]:
    stems = json.loads(row["stems_mm"]) if row["stems_mm"] else None
    return {
        "dbh_cm": row["dbh_mm"] / 10,
        "height_m": None if row["height_cm"] is None else row["height_cm"] / 100,
        "stems_cm": [d / 10 for d in stems] if stems else None,
        "client_time": row["client_time"],
        "latitude": row["latitude"],
        "longitude": row["longitude"],
        "photo_sha256": row["photo_sha256"],
    }


def _store_estimate(db: Database, row: dict, method: Method, species: dict) -> dict | None:
    sizes = _sizes(row)
    record = {
        "measurement_id": row["id"],
        "method_version": method.version,
        "estimated_at": now_iso(),
    }
    if species["route"] == "excluded":
        record |= {
            "route": "excluded",
            "inputs": json.dumps({"reason": species["excluded_reason"]}, ensure_ascii=False),
            "agb_g": 0,
            "bgb_g": 0,
            "carbon_g": 0,
            "co2e_g": 0,
            "uncertainty_pct": 0,
        }
        insert(db, "measurement_estimates", record)
        return None
    estimate = estimate_tree(
        row["species_id"],
        sizes["dbh_cm"] if not sizes["stems_cm"] else None,
        sizes["height_m"],
        stems_cm=sizes["stems_cm"],
        method=method,
    )
    record |= {
        "route": estimate.route,
        "inputs": json.dumps(estimate.inputs),
        "agb_g": to_grams(estimate.agb_kg),
        "bgb_g": to_grams(estimate.bgb_kg),
        "carbon_g": to_grams(estimate.carbon_kg),
        "co2e_g": estimate.co2e_g,
        "uncertainty_pct": estimate.uncertainty_pct,
    }
    insert(db, "measurement_estimates", record)
    return record | {"flags": estimate.flags}


def _previous(db: Database, row: dict[str, Any]) -> dict[str, Any] | None:
    return first(
        db,
        """SELECT m.*, e.co2e_g FROM measurements m
                        JOIN measurement_estimates e ON e.measurement_id = m.id
                        WHERE m.tree_id = ? AND m.client_time < ? AND m.id != ?
                        ORDER BY m.client_time DESC LIMIT 1""",
        [row["tree_id"], row["client_time"], row["id"]],
    )


def _neighbours(db: Database, row: dict[str, Any]) -> list[dict[str, Any]]:
    return list(
        db.query(
            """SELECT t.id AS tree_id, s.name_zh AS species_name, m.latitude, m.longitude
           FROM trees t JOIN species s ON s.id = t.species_id
           JOIN measurements m ON m.id = (SELECT id FROM measurements WHERE tree_id = t.id
                                          ORDER BY client_time DESC LIMIT 1)
           WHERE t.household_id = ? AND t.species_id = ? AND t.id != ? AND t.status = 'alive'""",
            [row["household_id"], row["species_id"], row["tree_id"]],
        )
    )


def assess_measurement(
    db: Database, measurement_id: str, clock_offset_s: float | None = None
) -> list[dict[str, str]]:
    """Estimate a new measurement's stock and raise its plausibility flags; returns the flags."""
    method = load_method()
    row = _measurement(db, measurement_id)
    species = method.species[row["species_id"]]
    flags: list[dict[str, str]] = []
    with transaction(db):
        register_method(db, method)
        try:
            stored = _store_estimate(db, row, method, species)
        except EstimateError as error:
            stored = None
            flags.append({"code": "estimate_failed", "reason": str(error)})
        if stored:
            flags += [f for f in stored["flags"] if f["code"] not in INFORMATION_ONLY]
            previous = _previous(db, row)
            if previous:
                flags += plausibility.growth_flags(
                    species, _sizes(previous), _sizes(row), previous["co2e_g"], stored["co2e_g"]
                )
            else:
                flags += plausibility.duplicate_flags(_sizes(row), _neighbours(db, row))
        village = first(db, "SELECT * FROM villages WHERE id = ?", [row["village_id"]])
        flags += plausibility.location_flags(_sizes(row), village)
        flags += plausibility.record_flags(_sizes(row), row["server_time"], clock_offset_s)
        for flag in flags:
            insert(
                db,
                "flags",
                {
                    "measurement_id": row["id"],
                    "tree_id": row["tree_id"],
                    "village_id": row["village_id"],
                    "code": flag["code"],
                    "reason": flag["reason"],
                    "created_at": now_iso(),
                },
            )
        push.record_flagged(db, row["id"], flags)
    return flags


def review_flag(
    db: Database, flag_id: int, decision: str, note: str | None, user_id: int
) -> dict[str, Any]:
    """Accept a flagged record as it is, or reject it (it is then left out of crediting)."""
    flag = first(db, "SELECT * FROM flags WHERE id = ?", [flag_id])
    if flag is None:
        raise ApiError(404, "not_found", "No such flag.")
    if flag["decision"] is not None:
        raise ApiError(409, "conflict", f"This flag was already {flag['decision']}.")
    with transaction(db):
        db.execute(
            """UPDATE flags SET decision = ?, reviewed_by = ?, reviewed_at = ?,
                      review_note = ? WHERE id = ? AND decision IS NULL""",
            [decision, user_id, now_iso(), note, flag_id],
        )
        audit.record(
            db,
            f"flag.{decision}",
            f"flag:{flag_id}",
            {"code": flag["code"], "measurement": flag["measurement_id"]},
        )
    return first(db, "SELECT * FROM flags WHERE id = ?", [flag_id])


def _bounds(period_start: str, period_end: str) -> tuple[str, str]:
    start, end = date.fromisoformat(period_start), date.fromisoformat(period_end)
    if end <= start:
        raise ApiError(
            422,
            "validation_failed",
            "The period must end after it starts.",
            [{"field": "period_end", "problem": "must be after period_start"}],
        )
    if end == date.max:  # the day after it cannot be written
        raise ApiError(
            422,
            "validation_failed",
            "The period must end before the last representable day.",
            [{"field": "period_end", "problem": f"must be before {date.max.isoformat()}"}],
        )
    return (
        f"{start.isoformat()}T00:00:00.000Z",
        f"{(end + timedelta(days=1)).isoformat()}T00:00:00.000Z",
    )


_USABLE = """SELECT m.id, m.client_time, e.co2e_g, e.uncertainty_pct, e.route FROM measurements m
             JOIN measurement_estimates e ON e.measurement_id = m.id
             WHERE m.tree_id = ? AND m.client_time < ?
               AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.measurement_id = m.id
                               AND f.decision = 'rejected')
             ORDER BY m.client_time DESC LIMIT 1"""


_FIRST_USABLE_IN_PERIOD = """
SELECT m.id, m.client_time, e.co2e_g, e.uncertainty_pct, e.route FROM measurements m
JOIN measurement_estimates e ON e.measurement_id = m.id
WHERE m.tree_id = ? AND m.client_time >= ? AND m.client_time < ?
  AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.measurement_id = m.id AND f.decision = 'rejected')
ORDER BY m.client_time LIMIT 1"""


def _tree_growths(db: Database, village_id: int, start: str, end: str):
    trees = db.query(
        """SELECT t.id, t.status, t.status_changed_at, h.code AS household
                        FROM trees t JOIN households h ON h.id = t.household_id
                        WHERE h.village_id = ? ORDER BY t.id""",
        [village_id],
    )
    for tree in trees:
        if tree["status"] != "alive" and tree["status_changed_at"] < start:
            continue  # gone before the period began
        # Its stock when the period began, or, for a tree registered during the period, its
        # first measurement (the baseline it grows from).
        first_row = first(db, _USABLE, [tree["id"], start])
        new = first_row is None
        if new:
            first_row = first(db, _FIRST_USABLE_IN_PERIOD, [tree["id"], start, end])
        if first_row is None or first_row["route"] == "excluded":
            continue
        gone = tree["status"] != "alive" and tree["status_changed_at"] < end
        last_row = None if gone else first(db, _USABLE, [tree["id"], end])
        if new and last_row is not None and last_row["id"] == first_row["id"]:
            continue  # registered in the period and measured once: its baseline only
        yield (
            TreeGrowth(
                tree["id"],
                tree["household"],
                first_row["co2e_g"],
                None if gone else last_row["co2e_g"],
                first_row["uncertainty_pct"],
            ),
            first_row["id"],
            None if gone else last_row["id"],
        )


OPEN_FLAGS_OF_CALCULATION = """
SELECT count(*) FROM flags f JOIN credit_tree_lines l
  ON f.measurement_id IN (l.start_measurement_id, l.end_measurement_id)
WHERE l.calculation_id = ? AND f.decision IS NULL"""


def calculate_credit(
    db: Database,
    village: dict[str, Any],
    period_start: str,
    period_end: str,
    buffer_pct: int | None,
    user_id: int | None,
) -> int:
    """Credit a village's period from its stored estimates; returns the calculation id."""
    method = load_method()
    start, end = _bounds(period_start, period_end)
    buffer_pct = method.crediting["default_buffer_pct"] if buffer_pct is None else buffer_pct
    threshold = method.crediting["uncertainty_threshold_pct"]
    lines = list(_tree_growths(db, village["id"], start, end))
    carry = {
        row["code"]: row["carry_out_g"]
        for row in db.query(
            """SELECT h.code, l.carry_out_g FROM credit_household_lines l
           JOIN households h ON h.id = l.household_id
           JOIN credit_calculations c ON c.id = l.calculation_id
           WHERE c.village_id = ? AND c.status = 'issued'
             AND c.id = (SELECT max(c2.id) FROM credit_calculations c2
                         JOIN credit_household_lines l2 ON l2.calculation_id = c2.id
                         WHERE c2.status = 'issued' AND l2.household_id = l.household_id)""",
            [village["id"]],
        )
    }
    result = credit_period(
        [g for g, _, _ in lines], carry, buffer_pct=buffer_pct, uncertainty_threshold_pct=threshold
    )
    households = {
        row["code"]: row["id"]
        for row in db.query("SELECT id, code FROM households WHERE village_id = ?", [village["id"]])
    }
    with transaction(db):
        register_method(db, method)
        calculation_id = (
            db["credit_calculations"]
            .insert(
                {
                    "village_id": village["id"],
                    "period_start": period_start,
                    "period_end": period_end,
                    "method_version": method.version,
                    "buffer_pct": buffer_pct,
                    "uncertainty_threshold_pct": threshold,
                    "gross_g": result.gross_g,
                    "deduction_g": result.deduction_g,
                    "tonnes": result.tonnes,
                    "buffer_tonnes": result.buffer_tonnes,
                    "open_flags": 0,
                    "created_by": user_id,
                    "created_at": now_iso(),
                }
            )
            .last_pk
        )
        db["credit_household_lines"].insert_all(
            {
                "calculation_id": calculation_id,
                "household_id": households[code],
                "carry_in_g": h.carry_in_g,
                "gross_g": h.gross_g,
                "deduction_g": h.deduction_g,
                "issued_g": h.issued_g,
                "carry_out_g": h.carry_out_g,
            }
            for code, h in result.households.items()
        )
        db["credit_tree_lines"].insert_all(
            {
                "calculation_id": calculation_id,
                "tree_id": g.tree_id,
                "start_measurement_id": a,
                "end_measurement_id": b,
                "stock_start_g": g.stock_start_g,
                "stock_end_g": g.stock_end_g,
                "uncertainty_pct": g.uncertainty_pct,
            }
            for g, a, b in lines
        )
        open_flags = db.execute(OPEN_FLAGS_OF_CALCULATION, [calculation_id]).fetchone()[0]
        db["credit_calculations"].update(calculation_id, {"open_flags": open_flags})
        audit.record(
            db,
            "credit.calculated",
            f"credit_calculation:{calculation_id}",
            {
                "village": village["code"],
                "tonnes": result.tonnes,
                "net_g": result.net_g,
                "open_flags": open_flags,
            },
        )
    return calculation_id


def calculation_view(db: Database, calculation_id: int) -> dict[str, Any] | None:
    """A stored credit calculation, its household lines and tree lines."""
    calc = first(
        db,
        """SELECT c.*, v.code AS village_code FROM credit_calculations c
                        JOIN villages v ON v.id = c.village_id WHERE c.id = ?""",
        [calculation_id],
    )
    if calc is None:
        return None
    net = calc["gross_g"] - calc["deduction_g"]
    households = db.query(
        """SELECT h.code AS household, l.carry_in_g, l.gross_g, l.deduction_g,
                                    l.issued_g, l.carry_out_g
                             FROM credit_household_lines l JOIN households h
                               ON h.id = l.household_id
                             WHERE l.calculation_id = ? ORDER BY h.code""",
        [calculation_id],
    )
    trees = db.query(
        """SELECT tree_id, start_measurement_id, end_measurement_id, stock_start_g,
                               stock_end_g, uncertainty_pct
                        FROM credit_tree_lines WHERE calculation_id = ? ORDER BY tree_id""",
        [calculation_id],
    )
    method = first(db, "SELECT sha256 FROM methods WHERE version = ?", [calc["method_version"]])
    return {
        "id": calc["id"],
        "village_code": calc["village_code"],
        "period_start": calc["period_start"],
        "period_end": calc["period_end"],
        "method_version": calc["method_version"],
        "method_sha256": method["sha256"],
        "buffer_pct": calc["buffer_pct"],
        "uncertainty_threshold_pct": calc["uncertainty_threshold_pct"],
        "gross_g": calc["gross_g"],
        "deduction_g": calc["deduction_g"],
        "net_g": net,
        "tonnes": calc["tonnes"],
        "buffer_tonnes": calc["buffer_tonnes"],
        "sellable_tonnes": calc["tonnes"] - calc["buffer_tonnes"],
        "open_flags": calc["open_flags"],
        "issuable": calc["open_flags"] == 0,
        "status": calc["status"],
        "created_at": calc["created_at"],
        "households": list(households),
        "trees": list(trees),
    }
