"""Carbon lost after it was credited: a tree dead or felled, or a period whose net is a loss.

Each loss is recorded in grams against the bundle its tonnes went to, and the bundle cancels
tonnes automatically: in all, ceil(lost grams / 1 t), buffer tonnes first (oldest first), then
unsold ones (last in the public order first). What cannot be cancelled yet is the bundle's
shortfall, cancelled as soon as tonnes are there. A tree never loses more than it was credited.
Every batch of cancellations is anchored on the ledger (`cancellation:<bundle>:<batch>`).
"""

from typing import Any

from sqlite_utils import Database

from server import audit
from server.carbon.crediting import GRAMS_PER_TONNE
from server.carbon.records import credit_balance_g
from server.clock import now_iso
from server.db import first
from server.registry import chain_hooks, serials


def _owed_tonnes(db: Database, bundle_id: int) -> int:
    lost = first(
        db, "SELECT coalesce(sum(grams), 0) AS g FROM losses WHERE bundle_id = ?", [bundle_id]
    )["g"]
    done = first(
        db, "SELECT count(*) AS n FROM loss_cancellations WHERE bundle_id = ?", [bundle_id]
    )["n"]
    return -(-lost // GRAMS_PER_TONNE) - done


def _cancel(db: Database, bundle_id: int, loss_id: int) -> list[str]:
    """Cancel what the bundle owes for its losses (inside the caller's transaction)."""
    owed = _owed_tonnes(db, bundle_id)
    if owed <= 0:
        return []
    buffer = [
        r[0]
        for r in db.execute(
            """SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'buffer'
               ORDER BY vintage, seq LIMIT ?""",
            [bundle_id, owed],
        )
    ]
    unsold = [
        r[0]
        for r in db.execute(
            """SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'available'
               ORDER BY vintage DESC, seq DESC LIMIT ?""",
            [bundle_id, owed - len(buffer)],
        )
    ]
    cancelled = buffer + unsold
    if not cancelled:
        return []
    serials.set_status(db, cancelled, "cancelled")
    now = now_iso()
    batch = first(
        db,
        "SELECT coalesce(max(batch), 0) + 1 AS n FROM loss_cancellations WHERE bundle_id = ?",
        [bundle_id],
    )["n"]
    db["loss_cancellations"].insert_all(
        {
            "serial": s,
            "loss_id": loss_id,
            "bundle_id": bundle_id,
            "batch": batch,
            "from_buffer": int(s in buffer),
            "created_at": now,
        }
        for s in cancelled
    )
    chain_hooks.queue_cancellation(db, bundle_id, batch, cancelled)
    return cancelled


def record_loss(
    db: Database,
    *,
    bundle_id: int,
    grams: int,
    reason: str,
    issuance_id: int | None = None,
    calculation_id: int | None = None,
    tree_id: str | None = None,
) -> dict[str, Any]:
    """Record a loss and cancel the tonnes it makes the bundle owe; returns the loss."""
    loss_id = (
        db["losses"]
        .insert(
            {
                "bundle_id": bundle_id,
                "issuance_id": issuance_id,
                "calculation_id": calculation_id,
                "tree_id": tree_id,
                "grams": grams,
                "reason": reason,
                "created_at": now_iso(),
            }
        )
        .last_pk
    )
    cancelled = _cancel(db, bundle_id, loss_id)
    audit.record(
        db,
        "loss.recorded",
        f"loss:{loss_id}",
        {"reason": reason, "grams": grams, "tree": tree_id, "cancelled": cancelled},
    )
    return {"id": loss_id, "grams": grams, "reason": reason, "cancelled": cancelled}


def debit_tree(db: Database, tree_id: str, reason: str) -> dict[str, Any] | None:
    """A credited tree died or was felled: it loses what it was credited and not yet lost
    (inside the caller's transaction). None when it was never credited."""
    grams = credit_balance_g(db, tree_id)
    if grams <= 0:
        return None
    issued = first(
        db,
        """SELECT i.id, i.bundle_id FROM credit_tree_lines l
           JOIN issuances i ON i.calculation_id = l.calculation_id
           WHERE l.tree_id = ? ORDER BY i.id DESC LIMIT 1""",
        [tree_id],
    )
    return record_loss(
        db,
        bundle_id=issued["bundle_id"],
        grams=grams,
        reason=reason,
        issuance_id=issued["id"],
        tree_id=tree_id,
    )


def settle_shortfall(db: Database, bundle_id: int) -> list[str]:
    """Cancel tonnes a bundle still owes for earlier losses (after a new issuance)."""
    latest = first(db, "SELECT max(id) AS id FROM losses WHERE bundle_id = ?", [bundle_id])
    return _cancel(db, bundle_id, latest["id"]) if latest and latest["id"] else []


def bundle_losses(db: Database, bundle_id: int) -> dict[str, int]:
    """A bundle's losses in grams, tonnes cancelled (buffer / unsold) and still owed."""
    lost = first(
        db, "SELECT coalesce(sum(grams), 0) AS g FROM losses WHERE bundle_id = ?", [bundle_id]
    )["g"]
    row = first(
        db,
        """SELECT coalesce(sum(from_buffer), 0) AS buffer, count(*) AS total
           FROM loss_cancellations WHERE bundle_id = ?""",
        [bundle_id],
    )
    return {
        "lost_g": lost,
        "cancelled_buffer": row["buffer"],
        "cancelled_unsold": row["total"] - row["buffer"],
        "shortfall": max(_owed_tonnes(db, bundle_id), 0),
    }
