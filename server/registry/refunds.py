"""Refunds through the provider for money that could not be applied to an order: the
reservation expired, the order was already paid, the amount was wrong, or finance decided
so. One refund per provider transaction (a unique key), recorded and audited; the provider
call happens after the row is committed, so a crash leaves a `requested` row to retry.
"""

import secrets
from typing import Any

from sqlite_utils import Database

from server import audit
from server.clock import now_iso
from server.db import first, insert, transaction
from server.registry import providers

REASONS = {
    "reservation_expired": "预订已过期，碳汇已释放",
    "already_paid": "订单已付款，重复付款退回",
    "reference_used": "该付款已用于另一订单",
    "amount_mismatch": "付款金额与订单不符",
    "sold_out": "碳汇已售完",
    "unknown_order": "找不到对应订单",
    "finance": "财务退款",
}


def open_refund(
    db: Database,
    *,
    provider: str,
    transaction_id: str,
    amount_fen: int,
    reason: str,
    actor: str,
    order_id: int | None = None,
    attempt_id: int | None = None,
) -> int:
    """Record a refund to send (inside the caller's transaction); the existing one's id if
    this transaction was already refunded."""
    with transaction(db):
        found = first(
            db,
            "SELECT id FROM refunds WHERE provider = ? AND transaction_id = ?",
            [provider, transaction_id],
        )
        if found is not None:
            return found["id"]
        now = now_iso()
        refund_id = insert(
            db,
            "refunds",
            {
                "order_id": order_id,
                "attempt_id": attempt_id,
                "provider": provider,
                "transaction_id": transaction_id,
                "out_refund_no": "SPR" + secrets.token_hex(12).upper(),
                "amount_fen": amount_fen,
                "reason": reason,
                "status": "requested",
                "requested_by": actor,
                "created_at": now,
                "updated_at": now,
            },
        )
        audit.record(
            db,
            "refund.requested",
            f"refund:{refund_id}",
            {"provider": provider, "amount_fen": amount_fen, "reason": reason, "order": order_id},
            actor=actor,
        )
    return refund_id


def send(db: Database, refund_id: int) -> dict[str, Any]:
    """Ask the provider to refund (again, for a failed or requested row); records the answer."""
    row = first(db, "SELECT * FROM refunds WHERE id = ?", [refund_id])
    if row is None or row["status"] in ("succeeded", "processing"):
        return row
    provider = providers.get(row["provider"])
    total = row["amount_fen"]
    if row["attempt_id"] is not None:
        attempt = first(
            db, "SELECT paid_fen FROM payment_attempts WHERE id = ?", [row["attempt_id"]]
        )
        total = (attempt or {}).get("paid_fen") or total
    status, provider_id, error = "failed", None, None
    if provider is None:
        error = f"provider {row['provider']} is not configured"
    else:
        try:
            status, provider_id = provider.refund(
                row["out_refund_no"],
                row["transaction_id"],
                row["amount_fen"],
                total,
                REASONS.get(row["reason"], row["reason"]),
            )
        except providers.ProviderError as failure:
            error = str(failure)[:300]
    with transaction(db):
        db.execute(
            """UPDATE refunds SET status = ?, provider_refund_id = ?, error = ?, updated_at = ?
               WHERE id = ?""",
            [status, provider_id, error, now_iso(), refund_id],
        )
        if row["attempt_id"] is not None and status != "failed":
            db.execute(
                "UPDATE payment_attempts SET status = 'refunded' WHERE id = ?", [row["attempt_id"]]
            )
        audit.record(
            db,
            f"refund.{status}",
            f"refund:{refund_id}",
            {"provider": row["provider"], "amount_fen": row["amount_fen"], "error": error},
            actor="system",
        )
    return first(db, "SELECT * FROM refunds WHERE id = ?", [refund_id])


def listing(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    return list(
        db.query(
            """SELECT r.*, o.public_id AS order_public_id FROM refunds r
               LEFT JOIN orders o ON o.id = r.order_id ORDER BY r.id DESC LIMIT ?""",
            [limit],
        )
    )
