"""T+1 settlement: the daily batch of households owed at least the minimum transfer, each
transfer recorded by finance (reference, or the bank's return file), paid ones written to
the ledger (`settle`), failed ones owed again."""

import hashlib
import json
from datetime import date
from typing import Any

from cryptography.exceptions import InvalidTag
from flask import current_app
from sqlite_utils import Database

from server import anchors, audit, chain, events, pii
from server.clock import now_iso
from server.db import first, insert, transaction
from server.errors import ApiError
from server.households import pii_context


def settlement_reference(settlement_id: int) -> str:
    return f"settlement:{settlement_id}"


def owed_before(db: Database, settle_on: str) -> list[dict[str, Any]]:
    """Households' accruals dated before `settle_on`, less their pending and paid
    settlements: what a batch of that day may pay each one (positive amounts only)."""
    rows = db.query(
        """SELECT a.household_id, a.village_id, a.county_id, a.household_hash,
                  sum(a.amount_fen) - coalesce((SELECT sum(s.amount_fen) FROM settlements s
                      WHERE s.household_id = a.household_id
                      AND s.status IN ('pending', 'paid')), 0) AS owed_fen
           FROM accruals a WHERE a.accrued_on < ?
           GROUP BY a.household_id ORDER BY a.household_id""",
        [settle_on],
    )
    return [row for row in rows if row["owed_fen"] > 0]


def create_batch(
    db: Database, settle_on: str, min_transfer_fen: int, actor: str
) -> tuple[dict[str, Any], bool]:
    """The T+1 batch of day `settle_on` (YYYY-MM-DD); the same day again returns the same
    batch. Returns (batch, created)."""
    date.fromisoformat(settle_on)  # ValueError on a malformed date
    if min_transfer_fen < 1:
        raise ValueError("the minimum transfer is at least 1 fen")
    with transaction(db):
        existing = first(db, "SELECT * FROM settlement_batches WHERE settle_on = ?", [settle_on])
        if existing is not None:
            return existing, False
        due = [row for row in owed_before(db, settle_on) if row["owed_fen"] >= min_transfer_fen]
        now = now_iso()
        batch_id = insert(
            db,
            "settlement_batches",
            {
                "settle_on": settle_on,
                "min_transfer_fen": min_transfer_fen,
                "households": len(due),
                "total_fen": sum(row["owed_fen"] for row in due),
                "created_by": actor,
                "created_at": now,
            },
        )
        db.conn.executemany(
            """INSERT INTO settlements (batch_id, household_id, village_id, county_id,
                   amount_fen, household_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    batch_id,
                    row["household_id"],
                    row["village_id"],
                    row["county_id"],
                    row["owed_fen"],
                    row["household_hash"],
                    now,
                )
                for row in due
            ],
        )
        if due:
            _record_bank_details(db, batch_id, settle_on)
        anchor_if_complete(db, batch_id)  # a batch with no transfers is finished at once
        audit.record(
            db,
            "payout.batch_created",
            f"settlement_batch:{batch_id}",
            {"settle_on": settle_on, "households": len(due), "min_transfer_fen": min_transfer_fen},
            actor=actor,
        )
        batch = first(db, "SELECT * FROM settlement_batches WHERE id = ?", [batch_id])
        _announce_batch(db, batch)
    return batch, True


def _record_bank_details(db: Database, batch_id: int, settle_on: str) -> None:
    """Remember a keyed hash of the bank details each transfer is made out to, and anchor
    the batch's hashes, so a bank account swapped later shows in `sipang reconcile`."""
    key = current_app.config["PII_KEY"]
    rows = db.query(
        """SELECT s.id, h.code, h.bank_account_enc FROM settlements s
           JOIN households h ON h.id = s.household_id WHERE s.batch_id = ?""",
        [batch_id],
    )
    db.conn.executemany(
        "UPDATE settlements SET bank_sha256 = ? WHERE id = ?",
        [(anchors.current_bank_hash(key, row), row["id"]) for row in rows],
    )
    anchors.queue_settlement_bank(db, batch_id, settle_on)


def _announce_batch(db: Database, batch: dict[str, Any]) -> None:
    for row in db.query(
        """SELECT county_id, count(*) AS households, sum(amount_fen) AS fen FROM settlements
           WHERE batch_id = ? GROUP BY county_id""",
        [batch["id"]],
    ):
        events.announce(
            "payouts.batch",
            {
                "batch": batch["id"],
                "settle_on": batch["settle_on"],
                "households": row["households"],
                "total_fen": row["fen"],
            },
            row["county_id"],
            db=db,
        )


def batch_reference(settle_on: str) -> str:
    return f"settlement_batch:{settle_on}"


def batch_root(db: Database, batch_id: int) -> str | None:
    """sha256 of a finished batch's transfers — `[[id, household hash, fen, status], …]` by
    id, compact JSON — or None while any transfer waits."""
    rows = [
        [r["id"], r["household_hash"], r["amount_fen"], r["status"]]
        for r in db.query(
            "SELECT id, household_hash, amount_fen, status FROM settlements "
            "WHERE batch_id = ? ORDER BY id",
            [batch_id],
        )
    ]
    if any(status == "pending" for *_, status in rows):
        return None
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def anchor_if_complete(db: Database, batch_id: int) -> None:
    """Anchor a batch on the ledger once none of its transfers waits (inside the caller's
    transaction), so the bureau can check the whole list against the chain."""
    root = batch_root(db, batch_id)
    if root is not None:
        batch = first(db, "SELECT settle_on FROM settlement_batches WHERE id = ?", [batch_id])
        chain.anchor(db, "settlement_batch", batch_reference(batch["settle_on"]), root)


def get_settlement(db: Database, settlement_id: int) -> dict[str, Any] | None:
    if not 0 < settlement_id < 2**63:
        return None
    return first(db, "SELECT * FROM settlements WHERE id = ?", [settlement_id])


def record_transfer(
    db: Database,
    settlement_id: int,
    reference: str,
    actor: str,
    return_file_id: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a transfer as paid with its bank reference and queue it for the ledger.

    The same reference again changes nothing. Returns (settlement, changed)."""
    with transaction(db):
        row = get_settlement(db, settlement_id)
        if row is None:
            raise ApiError(404, "not_found", "没有这笔转账。")
        if row["status"] == "paid" and row["transfer_reference"] == reference:
            return row, False
        if row["status"] != "pending":
            raise ApiError(409, "already_recorded", "这笔转账已经登记过了。")
        if first(db, "SELECT 1 FROM settlements WHERE transfer_reference = ?", [reference]):
            raise ApiError(409, "reference_used", "这个转账流水号已用于另一笔转账。")
        owed = db.execute(
            """SELECT (SELECT coalesce(sum(amount_fen), 0) FROM accruals WHERE household_id = ?)
                    - (SELECT coalesce(sum(amount_fen), 0) FROM settlements
                       WHERE household_id = ? AND status = 'paid')""",
            [row["household_id"], row["household_id"]],
        ).fetchone()[0]
        if row["amount_fen"] > owed:
            raise ApiError(409, "exceeds_owed", "转账金额超过该户应得金额。", {"owed_fen": owed})
        db.execute(
            """UPDATE settlements SET status = 'paid', transfer_reference = ?, recorded_by = ?,
                      recorded_at = ?, return_file_id = ? WHERE id = ?""",
            [reference, actor, now_iso(), return_file_id, settlement_id],
        )
        chain.settle(
            db, settlement_reference(settlement_id), row["household_hash"], row["amount_fen"]
        )
        code = first(db, "SELECT code FROM households WHERE id = ?", [row["household_id"]])
        events.publish(
            db,
            "money.sent",
            household_id=row["household_id"],
            household_code=code["code"],
            amount_fen=row["amount_fen"],
        )
        audit.record(
            db,
            "payout.settled",
            f"settlement:{settlement_id}",
            {"amount_fen": row["amount_fen"], "batch": row["batch_id"]},
            actor=actor,
        )
        anchor_if_complete(db, row["batch_id"])
        row = get_settlement(db, settlement_id)
        announce_settled(db, row)
    return row, True


def record_failure(
    db: Database,
    settlement_id: int,
    reason: str,
    actor: str,
    return_file_id: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record a transfer that did not arrive: the amount is owed again (next batch)."""
    with transaction(db):
        row = get_settlement(db, settlement_id)
        if row is None:
            raise ApiError(404, "not_found", "没有这笔转账。")
        if row["status"] == "failed":
            return row, False
        if row["status"] != "pending":
            raise ApiError(409, "already_recorded", "这笔转账已经登记过了。")
        db.execute(
            """UPDATE settlements SET status = 'failed', failure_reason = ?, recorded_by = ?,
                      recorded_at = ?, return_file_id = ? WHERE id = ?""",
            [reason[:200], actor, now_iso(), return_file_id, settlement_id],
        )
        audit.record(
            db,
            "payout.failed",
            f"settlement:{settlement_id}",
            {"amount_fen": row["amount_fen"], "batch": row["batch_id"]},
            actor=actor,
        )
        anchor_if_complete(db, row["batch_id"])
        row = get_settlement(db, settlement_id)
        announce_settled(db, row)
    return row, True


def announce_settled(db: Database, row: dict[str, Any]) -> None:
    """Tell the county's dashboards a transfer was recorded (sent once it commits)."""
    village = first(db, "SELECT code FROM villages WHERE id = ?", [row["village_id"]])
    events.announce(
        "payouts.settled",
        {
            "batch": row["batch_id"],
            "settlement": row["id"],
            "village": village["code"],
            "status": row["status"],
            "amount_fen": row["amount_fen"],
        },
        row["county_id"],
        db=db,
    )


def batch_rows(
    db: Database, batch_id: int, actor: str, action: str = "pii.bank_details_viewed"
) -> list[dict[str, Any]]:
    """A batch's transfers with each household's name and bank account decrypted — the one
    place they are; the access is written to the audit log."""
    rows = list(
        db.query(
            """SELECT s.*, h.code, h.head_name_enc, h.bank_account_enc, h.bank_account_masked,
                      v.code AS village_code, v.name AS village_name
               FROM settlements s JOIN households h ON h.id = s.household_id
               JOIN villages v ON v.id = s.village_id
               WHERE s.batch_id = ? ORDER BY v.code, h.code""",
            [batch_id],
        )
    )
    key = current_app.config["PII_KEY"]
    for row in rows:
        try:
            row["head_name"] = pii.decrypt(
                row.pop("head_name_enc"), pii_context(row["code"], "head_name")
            )
            row["bank_account"] = pii.decrypt(
                row.pop("bank_account_enc"), pii_context(row["code"], "bank_account")
            )
        except (InvalidTag, ValueError):  # one unreadable household never hides the rest
            row.pop("head_name_enc", None)
            row.pop("bank_account_enc", None)
            row.update(head_name=None, bank_account=None, unreadable=True)
            continue
        row["unreadable"] = False
        # bank details changed since the batch was made: finance checks before paying
        now = anchors.bank_hash(key, row["bank_account"])
        row["bank_changed"] = bool(row["bank_sha256"]) and now != row["bank_sha256"]
    audit.record(
        db,
        action,
        f"settlement_batch:{batch_id}",
        {"households": len(rows), "fields": ["head_name", "bank_account"]},
        actor=actor,
    )
    return rows
