"""Finance screens for buyers' money (server-rendered, Chinese): 确认收款 for bank and
digital-RMB transfers, refunds (and payments that matched no order), and the providers'
daily statements with their reconciliation.

/finance/payments, /finance/refunds, /finance/statements, /finance/statements/<id>.
"""

from flask import Blueprint, current_app, flash, g, redirect, render_template, request

from server.access import allow
from server.db import first, get_db
from server.errors import ApiError
from server.registry import orders, refunds, statements
from server.registry.pages import beijing_time

bp = Blueprint("finance_pay", __name__, url_prefix="/finance")
REFERENCE = r"^[0-9A-Za-z_./-]{4,64}$"


def _actor() -> str:
    return f"user:{g.user['id']}"


@bp.app_template_filter("beijing")
def _beijing(moment: str | None) -> str:
    return beijing_time(moment) if moment else "—"


@bp.get("/payments")
@allow("finance")
def payments_page():
    """确认收款: orders waiting for a bank or digital-RMB transfer, and the latest paid."""
    db = get_db()
    code = request.args.get("code", "").strip().upper()
    where, params = "", []
    if code.startswith("SP") and code[2:].isdigit():
        where, params = " AND o.id = ?", [int(code[2:])]
    waiting = [
        orders.order_view(db, row) | {"id": row["id"], "created_at": row["created_at"]}
        for row in db.query(
            "SELECT * FROM orders o WHERE o.status = 'reserved' AND o.pay_method IN "  # noqa: S608
            f"('bank', 'digital_rmb'){where} ORDER BY o.id LIMIT 200",
            params,
        )
    ]
    recent = list(
        db.query(
            """SELECT id, public_id, tonnes, amount_fen, payment_method, payment_reference,
                      paid_at, confirmed_by FROM orders WHERE paid_at IS NOT NULL
               ORDER BY paid_at DESC LIMIT 30"""
        )
    )
    return render_template(
        "registry/finance_payments.html", waiting=waiting, recent=recent, code=code, user=g.user
    )


@bp.post("/payments/<order_id>/confirm")
@allow("finance")
def confirm(order_id: str):
    """Record a transfer's arrival: the bank's reference, checked against the order."""
    import re

    order = orders.get_order(get_db(), order_id)
    if order is None:
        raise ApiError(404, "not_found", "没有这个订单。")
    method = request.form.get("method", "bank")
    reference = request.form.get("reference", "").strip()
    amount = request.form.get("amount_fen", "")
    if method not in ("bank", "digital_rmb") or not re.fullmatch(REFERENCE, reference):
        flash("请填写银行流水号（4–64 位字母、数字或 ._/-）。", "error")
        return redirect("/finance/payments", 303)
    if amount != str(order["amount_fen"]):
        flash("到账金额与订单金额不符，不能确认；请与买方核对。", "error")
        return redirect("/finance/payments", 303)
    try:
        orders.confirm_payment(get_db(), order, method, reference, _actor())
    except ApiError as error:
        flash(f"未能确认：{error.message}", "error")
        return redirect("/finance/payments", 303)
    flash(f"已确认收款 {orders.transfer_code(order)}，证书已生成。", "ok")
    return redirect("/finance/payments", 303)


@bp.get("/refunds")
@allow("finance")
def refunds_page():
    """Refunds sent through the providers, and payments that matched no order."""
    db = get_db()
    unknown = list(
        db.query(
            """SELECT e.*, r.id AS refund_id, r.status AS refund_status FROM payment_events e
               LEFT JOIN refunds r ON r.provider = e.provider
                   AND r.transaction_id = e.transaction_id
               WHERE e.outcome = 'unknown_order' ORDER BY e.received_at DESC LIMIT 100"""
        )
    )
    return render_template(
        "registry/finance_refunds.html",
        refunds=refunds.listing(db),
        unknown=unknown,
        reasons=refunds.REASONS,
        user=g.user,
    )


@bp.post("/refunds/<int:refund_id>/retry")
@allow("finance")
def retry_refund(refund_id: int):
    """Send a failed refund to its provider again."""
    row = first(get_db(), "SELECT * FROM refunds WHERE id = ?", [refund_id])
    if row is None:
        raise ApiError(404, "not_found", "没有这笔退款。")
    done = refunds.send(get_db(), refund_id)
    flash(
        "退款已提交。" if done["status"] != "failed" else f"退款失败：{done['error']}",
        "ok" if done["status"] != "failed" else "error",
    )
    return redirect("/finance/refunds", 303)


@bp.post("/refunds/unknown")
@allow("finance")
def refund_unknown():
    """Refund a verified payment that named no order of ours (by its provider event)."""
    event = first(
        get_db(),
        """SELECT * FROM payment_events WHERE provider = ? AND event_id = ?
           AND outcome = 'unknown_order' AND transaction_id IS NOT NULL""",
        [request.form.get("provider", ""), request.form.get("event_id", "")],
    )
    if event is None:
        raise ApiError(404, "not_found", "没有这笔未匹配的付款。")
    refund_id = refunds.open_refund(
        get_db(),
        provider=event["provider"],
        transaction_id=event["transaction_id"],
        amount_fen=event["amount_fen"],
        reason="unknown_order",
        actor=_actor(),
    )
    refunds.send(get_db(), refund_id)
    flash("退款已提交。", "ok")
    return redirect("/finance/refunds", 303)


@bp.get("/statements")
@allow("finance")
def statements_page():
    """Imported statements with their unmatched counts, and the import form."""
    rows = list(get_db().query("SELECT * FROM statements ORDER BY id DESC LIMIT 100"))
    return render_template("registry/finance_statements.html", statements=rows, user=g.user)


@bp.post("/statements")
@allow("finance", max_body_setting="MAX_RETURN_FILE_BYTES")
def import_statement():
    """Import a WeChat 交易账单 or an Alipay 对账单 and reconcile it."""
    provider = request.form.get("provider", "")
    upload = request.files.get("file")
    if provider not in ("wechat", "alipay") or upload is None:
        flash("请选择渠道并上传账单文件。", "error")
        return redirect("/finance/statements", 303)
    raw = upload.read(current_app.config["MAX_RETURN_FILE_BYTES"] + 1)
    try:
        statement_id = statements.import_statement(
            get_db(), provider, upload.filename or "statement", raw, _actor()
        )
    except ApiError as error:
        flash(error.message, "error")
        return redirect("/finance/statements", 303)
    return redirect(f"/finance/statements/{statement_id}", 303)


@bp.get("/statements/<int:statement_id>")
@allow("finance")
def statement_page(statement_id: int):
    """One statement: every line's outcome, the unmatched ones first, and missing orders."""
    found = statements.summary(get_db(), statement_id) if statement_id < 2**63 else None
    if found is None:
        raise ApiError(404, "not_found", "没有这份账单。")
    return render_template("registry/finance_statement.html", s=found, user=g.user)
