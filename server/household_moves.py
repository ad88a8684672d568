"""Moving a household to another village of its county (docs/registry.md, "Moving a household").

A household code names its village, so a move gives the household a new code and door plate
in the new village; the old plate stops working at once (scanning it says it was replaced).
Everything that hangs off the household follows it (its trees, what it was issued, accrued
and paid), and the ledger keeps naming it by the key it had before the move
(`households.ledger_key`), so the chain sees no change at all: no new account, no name.
Personal data is encrypted again under the new code. What is refused is listed by `blockers`.
"""

from typing import Any

from sqlite_utils import Database

from server import audit, pii
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.households import code_secret, household_key, next_seq, pii_context
from village_kits import codes

PERSONAL = ("head_name", "phone", "id_number", "bank_account", "door_number")
REASON_LIMIT = 200


def ledger_key(household: dict[str, Any]) -> str:
    """The key the ledger names this household by: kept across moves."""
    return household.get("ledger_key") or household_key(household["code"])


def blockers(db: Database, household: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Why this household cannot move to `target` now (Chinese sentences); empty if it can."""
    problems = []
    if household["status"] != "active":
        problems.append("该户已标记迁出，不能再迁移。")
    if target["id"] == household["village_id"]:
        problems.append("该户已经在这个村。")
    source = first(db, "SELECT county_id FROM villages WHERE id = ?", [household["village_id"]])
    if target["county_id"] != source["county_id"]:
        problems.append("只能迁到本县的村：跨县请先标记迁出，再由新县登记。")
    drafts = [
        row["id"]
        for row in db.query(
            """SELECT c.id FROM credit_household_lines l
               JOIN credit_calculations c ON c.id = l.calculation_id
               WHERE l.household_id = ? AND c.status = 'draft' ORDER BY c.id""",
            [household["id"]],
        )
    ]
    if drafts:
        numbers = "、".join(f"第 {n} 号" for n in drafts)
        problems.append(f"该户的树在尚未签发的核算期中（{numbers}核算）：签发或作废后再迁。")
    sampled = db.execute(
        """SELECT count(*) FROM baseline_check_trees bt
           JOIN baseline_checks b ON b.id = bt.check_id AND b.status = 'assigned'
           JOIN trees t ON t.id = bt.tree_id WHERE t.household_id = ?""",
        [household["id"]],
    ).fetchone()[0]
    if sampled:
        problems.append("该户的树在进行中的基线复核中：复核完成后再迁。")
    pending = db.execute(
        "SELECT count(*) FROM settlements WHERE household_id = ? AND status = 'pending'",
        [household["id"]],
    ).fetchone()[0]
    if pending:
        problems.append("该户有一笔分成转账在未结清的结算批次中：财务登记到账或失败后再迁。")
    if next_seq(db, target["id"]) > codes.MAX_SEQ:
        problems.append(f"目标村已有 {codes.MAX_SEQ} 户，编号已用完。")
    return problems


def _new_code(db: Database, target: dict[str, Any], seq: int) -> tuple[str, int]:
    """A code in the target village that no plate ever had."""
    secret = code_secret(target["code"][:6])
    for plate_no in range(1, 200):
        code = codes.make_code(secret, target["code"], seq, plate_no)
        if not first(db, "SELECT 1 FROM revoked_plates WHERE code = ?", [code]):
            return code, plate_no
    raise ApiError(409, "conflict", "目标村没有可用的门牌编号。")


def move_household(
    db: Database,
    household: dict[str, Any],
    target: dict[str, Any],
    reason: str,
    moved_by: int | None = None,
) -> dict[str, Any]:
    """Move the household to `target` (a village of the same county); returns the new row."""
    reason = reason.strip()[:REASON_LIMIT]
    if not reason:
        raise ApiError(
            422,
            "validation_failed",
            "请填写迁移原因。",
            [{"field": "reason", "problem": "required"}],
        )
    with transaction(db):
        household = first(db, "SELECT * FROM households WHERE id = ?", [household["id"]])
        problems = blockers(db, household, target)
        if problems:
            raise ApiError(409, "cannot_move", "".join(problems), {"problems": problems})
        seq = next_seq(db, target["id"])
        code, plate_no = _new_code(db, target, seq)
        rekeyed = {}
        for field in PERSONAL:
            value = pii.decrypt(household[f"{field}_enc"], pii_context(household["code"], field))
            rekeyed[f"{field}_enc"] = pii.encrypt(value, pii_context(code, field))
        now = now_iso()
        db["revoked_plates"].insert(
            {
                "code": household["code"],
                "household_id": household["id"],
                "plate_no": household["plate_no"],
                "revoked_at": now,
                "reason": "moved",
            }
        )
        db["households"].update(
            household["id"],
            rekeyed
            | {
                "village_id": target["id"],
                "seq": seq,
                "code": code,
                "plate_no": plate_no,
                "ledger_key": ledger_key(household),
                "updated_at": now,
            },
        )
        # Derived balances follow the household: the new village's figures show what it is owed.
        db.execute(
            "UPDATE payout_balances SET village_id = ? WHERE household_id = ?",
            [target["id"], household["id"]],
        )
        # The new village's phones learn the household's trees (the household row itself is
        # logged by the trigger on its code).
        db.execute(
            """INSERT INTO change_log (village_id, entity, entity_id)
               SELECT ?, 'tree', id FROM trees WHERE household_id = ? ORDER BY id""",
            [target["id"], household["id"]],
        )
        trees = db.execute(
            "SELECT count(*) FROM trees WHERE household_id = ?", [household["id"]]
        ).fetchone()[0]
        source = first(db, "SELECT code FROM villages WHERE id = ?", [household["village_id"]])
        db["household_moves"].insert(
            {
                "household_id": household["id"],
                "from_village_id": household["village_id"],
                "to_village_id": target["id"],
                "old_code": household["code"],
                "new_code": code,
                "reason": reason,
                "moved_by": moved_by,
                "moved_at": now,
            }
        )
        audit.record(
            db,
            "household.moved",
            f"household:{code}",
            {
                "old_code": household["code"],
                "from_village": source["code"],
                "to_village": target["code"],
                "trees": trees,
                "reason": reason,
            },
        )
    return first(db, "SELECT * FROM households WHERE id = ?", [household["id"]])


def moves_of(db: Database, household_id: int) -> list[dict[str, Any]]:
    """The household's moves, oldest first, with the villages' names."""
    return list(
        db.query(
            """SELECT m.*, a.name AS from_name, b.name AS to_name FROM household_moves m
               JOIN villages a ON a.id = m.from_village_id
               JOIN villages b ON b.id = m.to_village_id
               WHERE m.household_id = ? ORDER BY m.id""",
            [household_id],
        )
    )
