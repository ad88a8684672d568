"""Issuance: a verified period's whole tonnes become serials in a bundle, with the buffer
withheld; losses (trees dead or felled after issuance, a period's net loss) cancel buffer
tonnes first (server/registry/losses.py).

The credit calculation (server/carbon) already holds the whole tonnes, the buffer share and
each household's issued grams and carry-forward. Issuance scales them by the verification's
outcome, records each household's grams, mints the serials and marks the calculation
`issued`, which is what makes the next period start from its carry-forward.
"""

import json
from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon import records
from server.carbon.crediting import GRAMS_PER_TONNE, _share_out
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.registry import baseline, bundles, chain_hooks, losses, serials


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


def _void_reason(db: Database, calc_id: int) -> str | None:
    """Why a calculation can no longer be issued as computed: a reading it uses was
    rejected, or one of its trees is gone (re-compute the period)."""
    rejected = first(
        db,
        """SELECT l.tree_id FROM credit_tree_lines l JOIN flags f
             ON f.measurement_id IN (l.start_measurement_id, l.end_measurement_id)
           WHERE l.calculation_id = ? AND f.decision = 'rejected' LIMIT 1""",
        [calc_id],
    )
    if rejected:
        return f"树 {rejected['tree_id'][:8]} 所用的测量记录已被驳回"
    gone = first(
        db,
        """SELECT l.tree_id, t.status FROM credit_tree_lines l JOIN trees t ON t.id = l.tree_id
           WHERE l.calculation_id = ? AND t.status != 'alive' LIMIT 1""",
        [calc_id],
    )
    if gone:
        return f"树 {gone['tree_id'][:8]} 已登记为{'死亡' if gone['status'] == 'dead' else '砍伐'}"
    return None


def _photos_missing(db: Database, calc_id: int) -> list[str]:
    """Trees whose end reading has no photo stored under its hash."""
    return [
        row["tree_id"]
        for row in db.query(
            """SELECT l.tree_id FROM credit_tree_lines l
               JOIN measurements m ON m.id = l.end_measurement_id
               WHERE l.calculation_id = ? AND (m.photo_sha256 IS NULL OR NOT EXISTS
                     (SELECT 1 FROM blobs b WHERE b.sha256 = m.photo_sha256))
               ORDER BY l.tree_id""",
            [calc_id],
        )
    ]


def _check_issuable(db: Database, calc: dict[str, Any]) -> None:
    """Refuse (inside the write transaction) what would issue unreviewed or unproven growth."""
    records.check_not_over_issued(db, calc["village_id"], calc["period_start"])
    open_flags = db.execute(records.OPEN_FLAGS_OF_CALCULATION, [calc["id"]]).fetchone()[0]
    if open_flags:
        raise ApiError(409, "open_flags", f"还有 {open_flags} 条待复核记录，复核后才能签发。")
    _, unchecked = baseline.deduction_g(db, calc["id"])
    if unchecked:
        raise ApiError(
            409,
            "baseline_unchecked",
            f"{len(unchecked)} 棵树的登记基线还没有通过基线复核：复核通过后才能签发首期。",
            [{"field": "tree_id", "problem": tree} for tree in unchecked[:50]],
        )
    missing = _photos_missing(db, calc["id"])
    if missing:
        raise ApiError(
            409,
            "photos_missing",
            f"{len(missing)} 棵树的照片还没有上传并核对：照片到齐后才能签发。",
            [{"field": "tree_id", "problem": tree} for tree in missing[:50]],
        )


def issue(
    db: Database, verification: dict[str, Any], bundle: dict[str, Any], user_id: int | None
) -> dict[str, Any]:
    """Issue a verified period's tonnes into a bundle; returns the issuance.

    Everything it rests on is checked again inside the write transaction: the period does
    not overlap an issued one, every reading is reviewed and none rejected, every tree is
    still standing, every photo is stored. A rejected reading or a lost tree voids the
    calculation (the period must be re-computed)."""
    if verification["status"] not in ("passed", "partial"):
        raise ApiError(409, "not_verified", "Only a passed or partial verification issues.")
    voided = None
    with transaction(db):
        calc = first(
            db, "SELECT * FROM credit_calculations WHERE id = ?", [verification["calculation_id"]]
        )
        if calc["status"] == "void":
            raise ApiError(409, "calculation_void", f"这次计算已作废：{calc['void_reason']}")
        if calc["status"] != "draft":
            raise ApiError(409, "already_issued", "This period is already issued.")
        village = first(db, "SELECT * FROM villages WHERE id = ?", [calc["village_id"]])
        vintage = int(calc["period_end"][:4])
        _check_entry(db, bundle, calc, village, vintage)
        voided = _void_reason(db, calc["id"])
        if voided:
            db.execute(
                "UPDATE credit_calculations SET status = 'void', void_reason = ? WHERE id = ?",
                [voided, calc["id"]],
            )
            audit.record(
                db, "credit.voided", f"credit_calculation:{calc['id']}", {"reason": voided}
            )
        else:
            _check_issuable(db, calc)
            issuance_id = _issue(db, calc, village, verification, bundle, vintage, user_id)
    if voided:
        raise ApiError(409, "calculation_void", f"这次计算已作废，请重新计算：{voided}")
    return issuance_view(db, issuance_id)


def _tonnes(db: Database, calc: dict, verification: dict) -> tuple[int, int]:
    """(whole tonnes to issue, grams taken off for baselines): the calculation's tonnes
    times the verification's scale, less the share of the claimed growth that the baseline
    checks' excess takes off (server/registry/baseline.py)."""
    claimed = max(calc["gross_g"], 0)
    deduction, _ = baseline.deduction_g(db, calc["id"])
    kept_ppm = 1_000_000
    if deduction and claimed > 0:
        kept_ppm = max(claimed - deduction, 0) * 1_000_000 // claimed
    return calc["tonnes"] * verification["scale_ppm"] * kept_ppm // 10**12, deduction


def _issue(db, calc, village, verification, bundle, vintage, user_id) -> int:
    tonnes, baseline_g = _tonnes(db, calc, verification)
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
                "baseline_deduction_g": baseline_g,
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
    chain_hooks.queue_issuance(db, issuance_id)
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
    if calc["loss_g"]:
        losses.record_loss(
            db,
            bundle_id=bundle["id"],
            grams=calc["loss_g"],
            reason="net_loss",
            issuance_id=issuance_id,
            calculation_id=calc["id"],
        )
    else:
        losses.settle_shortfall(db, bundle["id"])
    return issuance_id


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
    lost = db.query(
        """SELECT l.id, l.reason, l.grams, l.tree_id, l.created_at,
                  (SELECT count(*) FROM loss_cancellations c WHERE c.loss_id = l.id) AS cancelled
           FROM losses l WHERE l.issuance_id = ? ORDER BY l.id""",
        [issuance_id],
    )
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
        "losses": list(lost),
    }


def reverse(
    db: Database, issuance: dict[str, Any], tree_ids: list[str], user_id: int | None
) -> dict[str, Any]:
    """Debit trees of an issued period that died or were felled. A status change debits at
    once, so this only catches trees recorded gone before that rule; asking again for a tree
    already debited changes nothing and answers what was lost."""
    problems = []
    for tree_id in dict.fromkeys(tree_ids):
        line = first(
            db,
            """SELECT t.status FROM credit_tree_lines l JOIN trees t ON t.id = l.tree_id
               WHERE l.calculation_id = ? AND l.tree_id = ?""",
            [issuance["calculation_id"], tree_id],
        )
        if line is None:
            problems.append({"field": "tree_ids", "problem": f"{tree_id} was not credited here"})
        elif line["status"] == "alive":
            problems.append({"field": "tree_ids", "problem": f"{tree_id} is still alive"})
    if problems:
        raise ApiError(422, "validation_failed", "These trees cannot be reversed.", problems)
    with transaction(db):
        for tree_id in dict.fromkeys(tree_ids):
            status = first(db, "SELECT status FROM trees WHERE id = ?", [tree_id])["status"]
            losses.debit_tree(db, tree_id, status)
        marks = ",".join("?" for _ in dict.fromkeys(tree_ids))
        lost = list(
            db.query(
                f"""SELECT l.id, l.tree_id, l.grams,
                          (SELECT group_concat(serial) FROM loss_cancellations c
                           WHERE c.loss_id = l.id) AS serials
                   FROM losses l WHERE l.tree_id IN ({marks}) ORDER BY l.id""",  # noqa: S608
                list(dict.fromkeys(tree_ids)),
            )
        )
    return {
        "issuance_id": issuance["id"],
        "grams": sum(row["grams"] for row in lost),
        "losses": [row["id"] for row in lost],
        "cancelled": [s for row in lost for s in (row["serials"] or "").split(",") if s],
    }
