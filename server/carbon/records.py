"""Credit calculations: a village's period credited along each tree's chain of anchors, every
input line kept so any figure can be recomputed; flag review, which binds.

Both ends of every tree line are recomputed from the stored readings under the one
parameter set the calculation names, so a changed set never creates growth. Growth counts
only inside the range each model was fitted on, and a tree never loses more than it was
credited. The buffer is a methodology constant, never below rules.BUFFER_FLOOR_PCT.
"""

import json
from datetime import date
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon import plausibility, rules, tree_anchors, uncertainty
from server.carbon.assessment import register_method, stock_g
from server.carbon.crediting import TreeGrowth, credit_period, uncertainty_deduction_g
from server.carbon.estimate import EstimateError
from server.carbon.method import Method, load_method
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError

__all__ = ["register_method", "calculate_credit", "calculation_view", "review_flag"]


def review_flag(
    db: Database, flag_id: int, decision: str, note: str | None, user_id: int
) -> dict[str, Any]:
    """Accept a flagged record as it is, or reject it: a rejected record is left out of
    crediting and voids every unissued calculation that used it."""
    flag = first(db, "SELECT * FROM flags WHERE id = ?", [flag_id])
    if flag is None:
        raise ApiError(404, "not_found", "没有这条待复核记录。")
    if flag["decision"] is not None:
        raise ApiError(409, "conflict", "这条记录已经复核过了。")
    with transaction(db):
        db.execute(
            """UPDATE flags SET decision = ?, reviewed_by = ?, reviewed_at = ?,
                      review_note = ? WHERE id = ? AND decision IS NULL""",
            [decision, user_id, now_iso(), note, flag_id],
        )
        voided = []
        if decision == "rejected":
            voided = void_calculations_using(
                db, flag["measurement_id"], f"所用测量记录被驳回（复核 {flag_id}）"
            )
        audit.record(
            db,
            f"flag.{decision}",
            f"flag:{flag_id}",
            {"code": flag["code"], "measurement": flag["measurement_id"], "voided": voided},
        )
    return first(db, "SELECT * FROM flags WHERE id = ?", [flag_id])


def stored_method(db: Database, version: str) -> Method:
    """The parameter set a stored figure names: its file, or the copy kept in `methods`."""
    row = first(db, "SELECT sha256, document FROM methods WHERE version = ?", [version])
    if row is None:
        return load_method(version)
    document = json.loads(row["document"])
    return Method(version, row["sha256"], document)


def void_calculations_using(db: Database, measurement_id: str, reason: str) -> list[int]:
    """Void every draft calculation with a line that starts or ends at this reading."""
    ids = [
        row["id"]
        for row in db.query(
            """SELECT DISTINCT c.id FROM credit_calculations c
               JOIN credit_tree_lines l ON l.calculation_id = c.id
               WHERE c.status = 'draft'
                 AND (l.start_measurement_id = ? OR l.end_measurement_id = ?)""",
            [measurement_id, measurement_id],
        )
    ]
    for calculation_id in ids:
        db.execute(
            "UPDATE credit_calculations SET status = 'void', void_reason = ? WHERE id = ?",
            [reason, calculation_id],
        )
    return ids


def _bounds(period_start: str, period_end: str) -> tuple[str, str]:
    problems = []
    days = {}
    for name, text in (("period_start", period_start), ("period_end", period_end)):
        try:
            days[name] = date.fromisoformat(text)
        except (TypeError, ValueError):
            problems.append({"field": name, "problem": "需要日期，如 2026-12-31"})
    if problems:
        raise ApiError(422, "validation_failed", "计入期的日期无法识别。", problems)
    start, end = days["period_start"], days["period_end"]
    if end <= start:
        raise ApiError(
            422,
            "validation_failed",
            "计入期的结束日期必须晚于开始日期。",
            [{"field": "period_end", "problem": "must be after period_start"}],
        )
    if start < date.fromisoformat(rules.EARLIEST_CLIENT_DATE) or end >= date(9999, 12, 31):
        raise ApiError(
            422,
            "validation_failed",
            "计入期的日期超出范围。",
            [
                {
                    "field": "period_end",
                    "problem": f"must be between {rules.EARLIEST_CLIENT_DATE} and 9999-12-30",
                }
            ],
        )
    return f"{start.isoformat()}T00:00:00.000Z", tree_anchors.day_after(period_end)


def capped_stock_g(
    method: Method, species_id: str, sizes: dict[str, Any]
) -> tuple[int, str | None]:
    """A reading's stock with its DBH (each stem) and height held inside the range the
    species' model was fitted on; the note says when a size was held."""
    species = method.species[species_id]
    low, high = plausibility.fitted_range(species, "dbh_cm")
    h_low, h_high = plausibility.fitted_range(species, "height_m")
    held = dict(sizes)
    note = None
    stems = sizes.get("stems_cm") or [sizes["dbh_cm"]]
    clamped = [min(max(d, low), high) for d in stems]
    if clamped != stems:
        note = f"胸径按模型拟合范围 {low:g}–{high:g} 厘米计"
    if sizes.get("stems_cm"):
        held["stems_cm"] = clamped
    else:
        held["dbh_cm"] = clamped[0]
    if sizes.get("height_m") is not None:
        height = min(max(sizes["height_m"], h_low), h_high)
        if height != sizes["height_m"]:
            note = (note + "；" if note else "") + f"树高按拟合范围 {h_low:g}–{h_high:g} 米计"
        held["height_m"] = height
    return stock_g(method, species_id, held), note


def credit_balance_g(db: Database, tree_id: str) -> int:
    """What a tree has been credited in issued periods, less what it has already lost."""
    credited = first(
        db,
        """SELECT coalesce(sum(
               coalesce(l.credited_g, max(coalesce(l.stock_end_g, 0) - l.stock_start_g, 0))
               * v.scale_ppm / 1000000), 0) AS grams
           FROM credit_tree_lines l JOIN credit_calculations c ON c.id = l.calculation_id
           JOIN issuances i ON i.calculation_id = c.id
           JOIN verifications v ON v.id = i.verification_id
           WHERE l.tree_id = ? AND c.status = 'issued'""",
        [tree_id],
    )["grams"]
    lost = first(
        db, "SELECT coalesce(sum(grams), 0) AS grams FROM losses WHERE tree_id = ?", [tree_id]
    )["grams"]
    return max(credited - lost, 0)


def _tree_lines(db: Database, village_id: int, start: str, end: str, method: Method) -> list:
    """(TreeGrowth, start id, end id, credited grams, note) for each tree that grew. The
    uncertainty is the period's: the 90 % half-width of the village's summed net change
    (server/carbon/uncertainty.py), applied to every tree as VM0047 applies it to a project.
    One equation's error is shared by all the trees it is applied to (a species' model
    errors add up, not in quadrature); species and readings are independent."""
    threshold = method.crediting["uncertainty_threshold_pct"]
    trees = db.query(
        """SELECT t.id, t.species_id, h.code AS household FROM trees t
           JOIN households h ON h.id = t.household_id
           WHERE h.village_id = ? AND t.status = 'alive' ORDER BY t.id""",
        [village_id],
    )
    issued_until = tree_anchors.issued_until(db, village_id) or ""
    found, parts = [], {}
    for tree in list(trees):
        species = method.species.get(tree["species_id"])
        if species is None or species["route"] == "excluded":
            continue
        anchor = tree_anchors.tree_anchor(db, tree["id"])
        if anchor is None or anchor["client_time"] >= end:
            continue
        end_row = first(
            db,
            f"""SELECT m.* FROM measurements m WHERE m.tree_id = ? AND m.client_time > ?
                AND m.client_time >= ? AND m.client_time < ? AND {tree_anchors.NOT_REJECTED}
                ORDER BY m.client_time DESC, m.rowid DESC LIMIT 1""",  # noqa: S608
            [tree["id"], max(anchor["client_time"], issued_until), start, end],
        )
        if end_row is None:
            continue
        ends = (tree_anchors.sizes(anchor), tree_anchors.sizes(end_row))
        try:
            start_g, start_note = capped_stock_g(method, tree["species_id"], ends[0])
            end_g, end_note = capped_stock_g(method, tree["species_id"], ends[1])
            part = uncertainty.period_parts(method, tree["species_id"], *ends)
        except (EstimateError, ValueError, KeyError):
            continue
        species_part = parts.setdefault(tree["species_id"], dict.fromkeys(part, 0.0))
        for key, value in part.items():
            species_part[key] += value
        note = "；".join(n for n in dict.fromkeys((start_note, end_note)) if n) or None
        found.append((tree, anchor["id"], end_row["id"], start_g, end_g, note))
    u90 = uncertainty.combined_u90_pct(list(parts.values())) if parts else 0
    lines = []
    for tree, start_id, end_id, start_g, end_g, note in found:
        growth = TreeGrowth(
            tree["id"],
            tree["household"],
            start_g,
            end_g,
            u90,
            min_growth_g=-credit_balance_g(db, tree["id"]),
        )
        credited = growth.growth_g - uncertainty_deduction_g(growth.growth_g, u90, threshold)
        lines.append((growth, start_id, end_id, credited, note))
    return lines


def buffer_pct(method: Method) -> int:
    """The methodology's buffer share, never below the floor."""
    return max(rules.BUFFER_FLOOR_PCT, method.crediting["default_buffer_pct"])


def _carry_in(db: Database, village_id: int) -> dict[str, int]:
    return {
        row["code"]: row["carry_out_g"]
        for row in db.query(
            """SELECT h.code, l.carry_out_g FROM credit_household_lines l
           JOIN households h ON h.id = l.household_id
           JOIN credit_calculations c ON c.id = l.calculation_id
           WHERE c.village_id = ? AND c.status = 'issued'
             AND c.id = (SELECT max(c2.id) FROM credit_calculations c2
                         JOIN credit_household_lines l2 ON l2.calculation_id = c2.id
                         WHERE c2.status = 'issued' AND l2.household_id = l.household_id)""",
            [village_id],
        )
    }


def check_not_over_issued(db: Database, village_id: int, period_start: str) -> None:
    """Refuse a period that starts on or before the end of an issued one."""
    issued = first(
        db,
        """SELECT max(period_end) AS period_end FROM credit_calculations
           WHERE village_id = ? AND status = 'issued'""",
        [village_id],
    )["period_end"]
    if issued and period_start <= issued:
        raise ApiError(
            409,
            "overlapping_period",
            f"本村已签发至 {issued}：新的计入期须从其后开始。",
            [{"field": "period_start", "problem": f"must be after {issued}"}],
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
    user_id: int | None = None,
    method: Method | None = None,
) -> int:
    """Credit a village's period from its stored readings under one parameter set (the
    current one unless given); returns the calculation id."""
    method = method or load_method()
    start, end = _bounds(period_start, period_end)
    buffer = buffer_pct(method)
    threshold = method.crediting["uncertainty_threshold_pct"]
    households = {
        row["code"]: row["id"]
        for row in db.query("SELECT id, code FROM households WHERE village_id = ?", [village["id"]])
    }
    with transaction(db):
        check_not_over_issued(db, village["id"], period_start)
        lines = list(_tree_lines(db, village["id"], start, end, method))
        result = credit_period(
            [line[0] for line in lines],
            _carry_in(db, village["id"]),
            buffer_pct=buffer,
            uncertainty_threshold_pct=threshold,
        )
        register_method(db, method)
        calculation_id = (
            db["credit_calculations"]
            .insert(
                {
                    "village_id": village["id"],
                    "period_start": period_start,
                    "period_end": period_end,
                    "method_version": method.version,
                    "buffer_pct": buffer,
                    "uncertainty_threshold_pct": threshold,
                    "gross_g": result.gross_g,
                    "deduction_g": result.deduction_g,
                    "tonnes": result.tonnes,
                    "buffer_tonnes": result.buffer_tonnes,
                    "loss_g": result.loss_g,
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
                "loss_g": h.loss_g,
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
                "credited_g": credited,
                "note": note,
            }
            for g, a, b, credited, note in lines
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
    households = db.query(
        """SELECT h.code AS household, l.carry_in_g, l.gross_g, l.deduction_g,
                  l.issued_g, l.carry_out_g, l.loss_g
           FROM credit_household_lines l JOIN households h ON h.id = l.household_id
           WHERE l.calculation_id = ? ORDER BY h.code""",
        [calculation_id],
    )
    trees = db.query(
        """SELECT tree_id, start_measurement_id, end_measurement_id, stock_start_g,
                  stock_end_g, uncertainty_pct, credited_g, note
           FROM credit_tree_lines WHERE calculation_id = ? ORDER BY tree_id""",
        [calculation_id],
    )
    method = first(db, "SELECT sha256 FROM methods WHERE version = ?", [calc["method_version"]])
    open_flags = db.execute(OPEN_FLAGS_OF_CALCULATION, [calculation_id]).fetchone()[0]
    keys = (
        "id", "village_code", "period_start", "period_end", "method_version", "buffer_pct",
        "uncertainty_threshold_pct", "gross_g", "deduction_g", "tonnes", "buffer_tonnes",
        "loss_g", "status", "void_reason", "created_at",
    )  # fmt: skip
    return {key: calc[key] for key in keys} | {
        "method_sha256": method["sha256"],
        "net_g": calc["gross_g"] - calc["deduction_g"],
        "sellable_tonnes": calc["tonnes"] - calc["buffer_tonnes"],
        "open_flags": open_flags,
        "issuable": open_flags == 0 and calc["status"] == "draft",
        "households": list(households),
        "trees": list(trees),
    }
