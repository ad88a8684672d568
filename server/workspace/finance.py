"""Finance screens: enterprise invoice requests to issue. (确认收款, refunds and statements
live in server/registry/finance_pages.py; T+1 batches in server/payouts/pages.py.)"""

from flask import Blueprint, g, request

from server.access import allow
from server.db import first, get_db
from server.workspace import invoices
from server.workspace.common import attempt, back, page

bp = Blueprint("workspace_finance", __name__, url_prefix="/finance")


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
