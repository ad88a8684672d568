"""Finance screens: bank transfers to confirm against reserved orders, and enterprise
invoice requests to issue. (T+1 batches live in server/payouts/routes.py.)"""

from flask import Blueprint, g, request

from server.access import allow
from server.clock import now_iso
from server.db import first, get_db
from server.registry import orders
from server.workspace import invoices
from server.workspace.common import attempt, back, page

bp = Blueprint("workspace_finance", __name__, url_prefix="/finance")


@bp.get("/bank-payments")
@allow("finance")
def bank_payments():
    """Reserved orders waiting for a bank transfer, oldest first; recently confirmed ones."""
    db = get_db()
    waiting = list(
        db.query(
            """SELECT o.*, b.name AS bundle_name, u.display_name AS buyer_name,
                      u.organisation FROM orders o
               JOIN bundles b ON b.id = o.bundle_id LEFT JOIN users u ON u.id = o.buyer_user_id
               WHERE o.status = 'reserved' AND o.expires_at > ? ORDER BY o.id""",
            [now_iso()],
        )
    )
    confirmed = list(
        db.query(
            """SELECT o.*, b.name AS bundle_name FROM orders o JOIN bundles b ON b.id = o.bundle_id
               WHERE o.payment_method = 'bank' ORDER BY o.paid_at DESC LIMIT 20"""
        )
    )
    return page("bank_payments.html", waiting=waiting, confirmed=confirmed)


@bp.post("/bank-payments/<order_id>")
@allow("finance")
def confirm(order_id: str):
    """Record an order's bank transfer by its reference; the tonnes go to the buyer."""
    db = get_db()
    found = orders.get_order(db, order_id[:64])
    reference = request.form.get("reference", "").strip()[:64]
    if found is None:
        return back("/finance/bank-payments", error="没有这个订单。")
    if len(reference) < 4:
        return back("/finance/bank-payments", error="请填写银行转账流水号（至少 4 位）。")
    return attempt(
        "/finance/bank-payments",
        f"已确认收款 {found['amount_fen'] // 100:,} 元。",
        lambda: orders.confirm_payment(db, found, "bank", reference, f"user:{g.user['id']}"),
    )


@bp.get("/invoices")
@allow("finance")
def invoice_list():
    """Invoice requests, waiting ones first."""
    return page("finance_invoices.html", requests=invoices.listed(get_db()))


@bp.post("/invoices/<int:invoice_id>")
@allow("finance")
def invoice_issued(invoice_id: int):
    """Record the invoice number of an issued invoice."""
    number = request.form.get("invoice_number", "").strip()[:40]
    found = first(get_db(), "SELECT id FROM invoice_requests WHERE id = ?", [invoice_id])
    if found is None or not number:
        return back("/finance/invoices", error="请填写发票号码。")
    return attempt(
        "/finance/invoices",
        "已记录开票。",
        lambda: invoices.mark_issued(get_db(), invoice_id, number, g.user["id"]),
    )
