"""Issuance: a verified period's whole tonnes become serials in a bundle, with the buffer
withheld; reversals (trees dead or felled after issuance) cancel buffer tonnes first.

The credit calculation (server/carbon) already holds the whole tonnes, the buffer share and
each household's issued grams and carry-forward. Issuance scales them by the verification's
outcome, records each household's grams, mints the serials and marks the calculation
`issued`, which is what makes the next period start from its carry-forward.
"""

import json
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon.crediting import GRAMS_PER_TONNE, _share_out
from server.carbon.records import OPEN_FLAGS_OF_CALCULATION
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.registry import bundles, ledger, serials


def _check_entry(db: Database, bundle: dict, calc: dict, village: dict, vintage: int) -> None:
    """Refuse a period the bundle's fixed rules do not admit."""
    problems = []
    if bundle["status"] == "superseded":
        problems.append("the bundle has a newer version; issue into that")
    if village["county_id"] != bundle["county_id"]:
        problems.append("the village is in another county")
    if not bundle["vintage_from"] <= vintage <= bundle["vintage_to"]:
        problems.append(f"vintage {vintage} is outside the bundle's window")
    if calc["method_version"] not in json.loads(bundle["methods"]):
        problems.append(f"method {calc['method_version']} is not admitted")
    if problems:
        raise ApiError(409, "rules_not_met", "The bundle's rules do not admit this.", problems)


def issue(
    db: Database, verification: dict[str, Any], bundle: dict[str, Any], user_id: int | None
) -> dict[str, Any]:
    """Issue a verified period's tonnes into a bundle; returns the issuance."""
    if verification["status"] not in ("passed", "partial"):
        raise ApiError(409, "not_verified", "Only a passed or partial verification issues.")
    calc = first(
        db, "SELECT * FROM credit_calculations WHERE id = ?", [verification["calculation_id"]]
    )
    if calc["status"] != "draft":
        raise ApiError(409, "already_issued", "This period is already issued.")
    village = first(db, "SELECT * FROM villages WHERE id = ?", [calc["village_id"]])
    vintage = int(calc["period_end"][:4])
    _check_entry(db, bundle, calc, village, vintage)
    open_flags = db.execute(OPEN_FLAGS_OF_CALCULATION, [calc["id"]]).fetchone()[0]
    if open_flags:
        raise ApiError(409, "open_flags", f"{open_flags} plausibility flags need review first.")
    overlapping = first(
        db,
        """SELECT id FROM credit_calculations WHERE village_id = ? AND status = 'issued'
           AND period_start <= ? AND period_end >= ?""",
        [calc["village_id"], calc["period_end"], calc["period_start"]],
    )
    if overlapping:
        raise ApiError(409, "overlapping_period", "An issued period of this village overlaps.")
    tonnes = calc["tonnes"] * verification["scale_ppm"] // 1_000_000
    buffer_tonnes = -(-tonnes * calc["buffer_pct"] // 100)
    issued = {
        row["household_id"]: row["issued_g"]
        for row in db.query(
            "SELECT household_id, issued_g FROM credit_household_lines WHERE calculation_id = ?",
            [calc["id"]],
        )
        if row["issued_g"] > 0
    }
    grams = _share_out(tonnes * GRAMS_PER_TONNE, issued)
    if bundle["published_at"] and tonnes:
        shares = bundles.household_shares(db, bundle["id"])
        for household, amount in grams.items():
            shares[household] = shares.get(household, 0) + amount
        problem = bundles.share_problem(bundle, {k: v for k, v in shares.items() if v})
        if problem:
            raise ApiError(409, "rules_not_met", f"After this issuance the bundle {problem}.")
    county = first(db, "SELECT code FROM counties WHERE id = ?", [village["county_id"]])["code"]
    with transaction(db):
        changed = db.execute(
            "UPDATE credit_calculations SET status = 'issued' WHERE id = ? AND status = 'draft'",
            [calc["id"]],
        ).rowcount
        if not changed:
            raise ApiError(409, "already_issued", "This period is already issued.")
        issuance_id = (
            db["issuances"]
            .insert(
                {
                    "calculation_id": calc["id"],
                    "verification_id": verification["id"],
                    "bundle_id": bundle["id"],
                    "vintage": vintage,
                    "tonnes": tonnes,
                    "buffer_tonnes": buffer_tonnes,
                    "created_by": user_id,
                    "created_at": now_iso(),
                }
            )
            .last_pk
        )
        first_serial, last_serial = serials.mint(
            db,
            bundle=bundle,
            county_code=county,
            vintage=vintage,
            issuance_id=issuance_id,
            tonnes=tonnes,
            buffer_tonnes=buffer_tonnes,
        )
        db.execute(
            "UPDATE issuances SET first_serial = ?, last_serial = ? WHERE id = ?",
            [first_serial, last_serial, issuance_id],
        )
        db["issuance_households"].insert_all(
            {"issuance_id": issuance_id, "household_id": h, "grams": g} for h, g in grams.items()
        )
        ledger.queue_issuance(db, issuance_id)
        audit.record(
            db,
            "issuance.issued",
            f"issuance:{issuance_id}",
            {
                "calculation": calc["id"],
                "bundle": bundle["id"],
                "tonnes": tonnes,
                "buffer": buffer_tonnes,
                "first": first_serial,
                "last": last_serial,
            },
        )
    return issuance_view(db, issuance_id)


def issuance_view(db: Database, issuance_id: int) -> dict[str, Any] | None:
    if not 0 < issuance_id < 2**63:
        return None
    row = first(db, "SELECT * FROM issuances WHERE id = ?", [issuance_id])
    if row is None:
        return None
    households = db.query(
        """SELECT h.code AS household, ih.grams FROM issuance_households ih
           JOIN households h ON h.id = ih.household_id WHERE ih.issuance_id = ?
           ORDER BY h.code""",
        [issuance_id],
    )
    reversals = db.query("SELECT * FROM reversals WHERE issuance_id = ? ORDER BY id", [issuance_id])
    village = first(
        db,
        """SELECT v.* FROM villages v JOIN credit_calculations c ON c.village_id = v.id
           WHERE c.id = ?""",
        [row["calculation_id"]],
    )
    return dict(row) | {
        "village_code": village["code"],
        "county_id": village["county_id"],
        "sellable_tonnes": row["tonnes"] - row["buffer_tonnes"],
        "households": list(households),
        "reversals": list(reversals),
    }


def reverse(
    db: Database, issuance: dict[str, Any], tree_ids: list[str], user_id: int | None
) -> dict[str, Any]:
    """Trees of an issued period died or were felled: cancel tonnes for their credited
    growth, rounded up to whole tonnes, buffer tonnes first (newest first), then unsold ones
    (last in the public order first). What cannot be cancelled is recorded as shortfall."""
    problems, grams = [], {}
    for tree_id in dict.fromkeys(tree_ids):
        line = first(
            db,
            """SELECT l.stock_start_g, l.stock_end_g, t.status FROM credit_tree_lines l
               JOIN trees t ON t.id = l.tree_id WHERE l.calculation_id = ? AND l.tree_id = ?""",
            [issuance["calculation_id"], tree_id],
        )
        if line is None:
            problems.append({"field": "tree_ids", "problem": f"{tree_id} was not credited here"})
        elif line["status"] == "alive":
            problems.append({"field": "tree_ids", "problem": f"{tree_id} is still alive"})
        elif first(db, "SELECT 1 FROM reversal_trees WHERE tree_id = ?", [tree_id]):
            problems.append({"field": "tree_ids", "problem": f"{tree_id} is already reversed"})
        else:
            grams[tree_id] = max((line["stock_end_g"] or 0) - line["stock_start_g"], 0)
    if problems:
        raise ApiError(422, "validation_failed", "These trees cannot be reversed.", problems)
    total = sum(grams.values())
    tonnes = -(-total // GRAMS_PER_TONNE)
    with transaction(db):
        buffer = [
            r[0]
            for r in db.execute(
                """SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'buffer'
                   ORDER BY vintage DESC, seq DESC LIMIT ?""",
                [issuance["bundle_id"], tonnes],
            )
        ]
        unsold = [
            r[0]
            for r in db.execute(
                """SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'available'
                   ORDER BY vintage DESC, seq DESC LIMIT ?""",
                [issuance["bundle_id"], tonnes - len(buffer)],
            )
        ]
        serials.set_status(db, buffer + unsold, "cancelled")
        shortfall = tonnes - len(buffer) - len(unsold)
        reversal_id = (
            db["reversals"]
            .insert(
                {
                    "issuance_id": issuance["id"],
                    "grams": total,
                    "tonnes": tonnes,
                    "from_buffer": len(buffer),
                    "from_available": len(unsold),
                    "shortfall": shortfall,
                    "created_by": user_id,
                    "created_at": now_iso(),
                }
            )
            .last_pk
        )
        db["reversal_trees"].insert_all(
            {"tree_id": t, "reversal_id": reversal_id, "grams": g} for t, g in grams.items()
        )
        audit.record(
            db,
            "issuance.reversed",
            f"issuance:{issuance['id']}",
            {
                "trees": list(grams),
                "grams": total,
                "cancelled": buffer + unsold,
                "shortfall": shortfall,
            },
        )
    return first(db, "SELECT * FROM reversals WHERE id = ?", [reversal_id]) | {
        "cancelled": buffer + unsold
    }
