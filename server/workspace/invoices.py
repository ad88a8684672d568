"""Invoice requests (发票抬头, 税号) for an enterprise's paid orders."""

import re
from typing import Any

from sqlite_utils import Database

from server import audit
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError

# 统一社会信用代码: 18 characters from digits and capitals without I, O, S, V, Z; older
# taxpayer numbers have 15 or 20.
TAX_ID = re.compile(r"^[0-9A-HJ-NP-RTUWXY]{18}$|^[0-9A-Z]{15}$|^[0-9A-Z]{20}$")


def request_invoice(
    db: Database, user: dict[str, Any], order_public_id: str, title: str, tax_id: str
) -> dict[str, Any]:
    """Ask finance for an invoice for one of the user's paid orders."""
    title, tax_id = title.strip(), tax_id.strip().upper()
    problems = []
    if not 0 < len(title) <= 100:
        problems.append({"field": "title", "problem": "required"})
    if not TAX_ID.match(tax_id):
        problems.append({"field": "tax_id", "problem": "invalid"})
    if problems:
        raise ApiError(422, "validation_failed", "请检查发票抬头和税号。", problems)
    order = first(
        db,
        "SELECT * FROM orders WHERE public_id = ? AND buyer_user_id = ? AND paid_at IS NOT NULL",
        [order_public_id, user["id"]],
    )
    if order is None:
        raise ApiError(404, "not_found", "没有这个已付款的订单。")
    if first(db, "SELECT 1 FROM invoice_requests WHERE order_id = ?", [order["id"]]):
        raise ApiError(409, "conflict", "这个订单已经申请过发票。")
    with transaction(db):
        invoice_id = (
            db["invoice_requests"]
            .insert(
                {
                    "user_id": user["id"],
                    "order_id": order["id"],
                    "title": title,
                    "tax_id": tax_id,
                    "amount_fen": order["amount_fen"],
                    "requested_at": now_iso(),
                }
            )
            .last_pk
        )
        audit.record(db, "invoice.requested", f"order:{order['id']}", {"invoice": invoice_id})
    return first(db, "SELECT * FROM invoice_requests WHERE id = ?", [invoice_id])


def mark_issued(db: Database, invoice_id: int, number: str, user_id: int) -> None:
    """Finance issued the invoice: record its number (once)."""
    with transaction(db):
        changed = db.execute(
            """UPDATE invoice_requests SET status = 'issued', invoice_number = ?, issued_at = ?,
                      issued_by = ? WHERE id = ? AND status = 'requested'""",
            [number, now_iso(), user_id, invoice_id],
        ).rowcount
        if not changed:
            raise ApiError(409, "already_recorded", "这张发票已经开具。")
        audit.record(db, "invoice.issued", f"invoice:{invoice_id}")


def listed(db: Database, user_id: int | None = None) -> list[dict[str, Any]]:
    """Invoice requests (one user's, or all), waiting first."""
    where, params = ("WHERE i.user_id = ?", [user_id]) if user_id else ("", [])
    return list(
        db.query(
            f"""SELECT i.*, o.public_id, o.tonnes, u.display_name AS buyer_name
                FROM invoice_requests i JOIN orders o ON o.id = i.order_id
                JOIN users u ON u.id = i.user_id {where}
                ORDER BY i.status = 'issued', i.id DESC LIMIT 200""",  # noqa: S608
            params,
        )
    )
