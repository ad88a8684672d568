"""Enterprise and court buyers: their orders and held tonnes, retirement with beneficiary
and a case number (司法生态赔偿 案号) or a purpose, and invoice requests."""

import re
import uuid

from flask import Blueprint, g, redirect, request

from server.access import allow
from server.dashboards import exports
from server.db import get_db
from server.errors import ApiError
from server.registry import certificates, orders
from server.workspace import invoices
from server.workspace.common import attempt, back, explain, page, whole

bp = Blueprint("workspace_enterprise", __name__, url_prefix="/enterprise")
PLAIN = re.compile(r"^[^<>\x00-\x1f\x7f]+$")
COMPENSATION = "司法生态赔偿"


def _own_orders() -> list[dict]:
    db = get_db()
    rows = db.query(
        """SELECT o.*, b.name AS bundle_name FROM orders o JOIN bundles b ON b.id = o.bundle_id
           WHERE o.buyer_user_id = ? AND o.status != 'expired' ORDER BY o.id DESC""",
        [g.user["id"]],
    )
    listed = []
    for row in rows:
        view = orders.order_view(db, row)
        listed.append(
            view
            | {
                "bundle_name": row["bundle_name"],
                "created_at": row["created_at"],
                "request_id": uuid.uuid4().hex,  # one retirement per form
            }
        )
    return listed


@bp.get("/orders")
@allow("enterprise")
def order_list():
    """The account's orders: held tonnes with the retirement form, certificates."""
    return page("enterprise_orders.html", orders=_own_orders(), compensation=COMPENSATION)


def compose_reason(
    kind: str, case_number: str, purpose: str
) -> tuple[str | None, str | None, str | None]:
    """The certificate's reason and case number (案号) from the form: (reason, case, problem)."""
    case = None
    if kind == "compensation":
        try:
            case = certificates.normalise_case_number(case_number)
        except ApiError as problem:
            return None, None, problem.message
        if case is None:
            return None, None, "司法生态赔偿请填写案号。"
        reason = COMPENSATION + (f"；{purpose}" if purpose else "")
    else:
        if not purpose:
            return None, None, "请填写注销用途。"
        reason = purpose
    if len(reason) > 200 or not PLAIN.match(reason):
        return None, None, "用途太长，或含有 < > 等符号。"
    return reason, case, None


@bp.post("/orders/<order_id>/retire")
@allow("enterprise")
def retire(order_id: str):
    """Retire held tonnes for a beneficiary; shows the certificate."""
    db = get_db()
    found = orders.get_order(db, order_id[:64])
    if found is None or found["buyer_user_id"] != g.user["id"]:
        return back("/enterprise/orders", error="没有这个订单。")
    beneficiary = request.form.get("beneficiary", "").strip()
    reason, case_number, problem = compose_reason(
        request.form.get("kind", ""),
        request.form.get("case_number", "").strip(),
        request.form.get("purpose", "").strip(),
    )
    if not beneficiary or len(beneficiary) > 60 or not PLAIN.match(beneficiary):
        problem = "请填写受益人（不超过 60 字，不含 < > 等符号）。"
    request_id = request.form.get("request_id", "")[:64]
    if not re.fullmatch(r"[0-9A-Za-z_-]{8,64}", request_id):
        problem = problem or "页面已过期，请刷新后重试。"
    if problem:
        return back("/enterprise/orders", error=problem)
    data = {
        "request_id": request_id,
        "beneficiary": beneficiary,
        "reason": reason,
        "case_number": case_number,
    }
    count = whole(request.form.get("tonnes"))
    if count is not None:
        data["tonnes"] = count
    try:
        cert, _ = orders.retire_held(db, found, data)
    except ApiError as error:
        return back("/enterprise/orders", error=explain(error))
    return redirect(f"/verify/{cert['id']}", code=303)


@bp.get("/retirements.<fmt>")
@allow("enterprise")
def retirement_export(fmt: str):
    """The account's certificates as XLSX (a title row, numbers that sum) or CSV, one row per
    retirement with its case number (案号) in its own column."""
    if fmt not in ("csv", "xlsx"):
        raise ApiError(404, "not_found", "只能导出 CSV 或 Excel。")
    certs = list(
        get_db().query(
            """SELECT c.* FROM certificates c JOIN orders o ON o.id = c.order_id
               WHERE o.buyer_user_id = ? ORDER BY c.year, c.seq""",
            [g.user["id"]],
        )
    )
    header, rows, kinds = exports.retirement_rows(certs)
    title = f"{g.user['display_name']}的碳汇注销记录"
    return exports.respond(fmt, "sipang-retirements", header, rows, title=title, types=kinds)


@bp.get("/invoices")
@allow("enterprise")
def invoice_page():
    """The account's invoice requests, and the form for a paid order."""
    paid = [o for o in _own_orders() if o["paid_at"]]
    return page(
        "enterprise_invoices.html",
        requests=invoices.listed(get_db(), g.user["id"]),
        paid=paid,
    )


@bp.post("/invoices")
@allow("enterprise")
def request_invoice():
    """Ask for an invoice (发票抬头, 税号) for a paid order."""
    return attempt(
        "/enterprise/invoices",
        "已提交发票申请，财务开具后会在这里显示发票号码。",
        lambda: invoices.request_invoice(
            get_db(),
            g.user,
            request.form.get("order", "")[:64],
            request.form.get("title", "")[:100],
            request.form.get("tax_id", "")[:20],
        ),
    )
