"""Paying an order: the buyer picks WeChat Pay, Alipay, a bank or digital-RMB transfer (or
the local test provider); the providers' notifications and Alipay's return land here.

Routes: `POST /orders/<id>/pay`, `GET /orders/<id>/wechat-qr.png`, `GET /pay/alipay/return`,
`GET|POST /pay/testpay/<out_trade_no>`; the notification views are registered under
`/api/v1/payments/<provider>/notify` by `market.py` and call the functions below.
"""

import io
import secrets
from urllib.parse import quote

from flask import Blueprint, Response, current_app, g, redirect, render_template, request

from server import audit
from server.access import PUBLIC, allow
from server.db import first, get_db
from server.errors import ApiError
from server.registry import artwork, orders, payments, providers
from server.registry.providers import BadNotification, Paid, ProviderError

bp = Blueprint("checkout", __name__)

METHODS = {
    "wechat_native": ("wechat", "native"),
    "wechat_h5": ("wechat", "h5"),
    "alipay_page": ("alipay", "page"),
    "alipay_wap": ("alipay", "wap"),
    "testpay": ("testpay", "test"),
}
TRANSFERS = ("bank", "digital_rmb")


def _order(order_id: str) -> dict:
    found = orders.get_order(get_db(), order_id)
    if found is None:
        raise ApiError(404, "not_found", "没有这个订单。")
    return found


def order_url(order: dict) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/orders/{order['public_id']}"


def choices() -> dict:
    """What the order page offers, from the providers and payee settings configured."""
    config = current_app.config
    on = providers.enabled()
    return {
        "wechat": "wechat" in on,
        "alipay": "alipay" in on,
        "testpay": "testpay" in on,
        "bank": True,  # transfers always stay possible (enterprises, courts)
        "payee": {
            "name": config.get("BANK_PAYEE_NAME"),
            "account": config.get("BANK_PAYEE_ACCOUNT"),
            "bank": config.get("BANK_PAYEE_BANK"),
        },
    }


@bp.post("/orders/<order_id>/pay")
@allow(PUBLIC)
def pay(order_id: str):
    """The buyer's choice of payment: go to the provider, or show the transfer details."""
    order = _order(order_id)
    method = request.form.get("method", "")
    if method in TRANSFERS:
        orders.choose_transfer(get_db(), order, method)
        return redirect(f"/orders/{order['public_id']}#pay", 303)
    if method not in METHODS:
        raise ApiError(422, "validation_failed", "请选择付款方式。")
    provider, channel = METHODS[method]
    attempt = payments.open_attempt(
        get_db(), order, provider, channel, client_ip=request.remote_addr
    )
    if channel == "native":
        return redirect(f"/orders/{order['public_id']}#pay", 303)
    if channel == "h5":
        return redirect(
            f"{attempt['pay_url']}&redirect_url={quote(order_url(order), safe='')}", 303
        )
    if provider == "testpay":
        return redirect(f"/pay/testpay/{attempt['out_trade_no']}", 303)
    return redirect(attempt["pay_url"], 303)


@bp.get("/orders/<order_id>/wechat-qr.png")
@allow(PUBLIC)
def wechat_qr(order_id: str):
    """The QR code of the order's open WeChat Native trade (scan with WeChat to pay)."""
    order = _order(order_id)
    attempt = first(
        get_db(),
        """SELECT pay_url FROM payment_attempts WHERE order_id = ? AND provider = 'wechat'
           AND channel = 'native' AND status = 'open' ORDER BY id DESC LIMIT 1""",
        [order["id"]],
    )
    if attempt is None:
        raise ApiError(404, "not_found", "没有待支付的微信订单。")
    out = io.BytesIO()
    artwork.qr_image(attempt["pay_url"], box=8).save(out, format="PNG")
    return Response(out.getvalue(), mimetype="image/png", headers={"Cache-Control": "no-store"})


def _refused(provider: str, reason: str) -> None:
    audit.record(get_db(), "payment.refused", f"trade:{provider}", {"reason": reason[:120]})
    current_app.logger.warning("%s notification refused: %s", provider, reason)


def wechat_notification():
    """Verify and apply a WeChat Pay notification; answered as the v3 spec says (204 when
    received, 4xx/5xx with {"code": "FAIL"} so WeChat sends it again)."""
    wechat = providers.get("wechat")
    if wechat is None:
        raise ApiError(404, "not_found", "WeChat Pay is not configured.")
    body = request.get_data(cache=True)
    try:
        paid = wechat.notification(request.headers, body)
    except BadNotification as error:
        _refused("wechat", str(error))
        return {"code": "FAIL", "message": "验签失败"}, 401
    except ProviderError as error:
        current_app.logger.warning("wechat notification: %s", error)
        return {"code": "FAIL", "message": "暂时无法处理"}, 500
    if paid is not None:
        payments.settle(get_db(), "wechat", paid)
    return Response(status=204)


def alipay_notification():
    """Verify and apply an Alipay notification; answered `success` (else Alipay retries)."""
    alipay = providers.get("alipay")
    if alipay is None:
        raise ApiError(404, "not_found", "Alipay is not configured.")
    try:
        paid = alipay.notification(request.form.to_dict())
    except BadNotification as error:
        _refused("alipay", str(error))
        return Response("fail", status=400, mimetype="text/plain")
    except ProviderError as error:
        current_app.logger.warning("alipay notification: %s", error)
        return Response("fail", status=500, mimetype="text/plain")
    if paid is not None:
        payments.settle(get_db(), "alipay", paid)
    return Response("success", mimetype="text/plain")


def _attempt(provider: str, out_trade_no: str) -> dict:
    found = first(
        get_db(),
        "SELECT * FROM payment_attempts WHERE provider = ? AND out_trade_no = ?",
        [provider, out_trade_no[:40]],
    )
    if found is None:
        raise ApiError(404, "not_found", "没有这笔支付。")
    return found


@bp.get("/pay/alipay/return")
@allow(PUBLIC)
def alipay_return():
    """Back from Alipay: the signed query string names the trade; Alipay is then asked
    whether it was paid (the query string alone proves nothing)."""
    alipay = providers.get("alipay")
    if alipay is None:
        raise ApiError(404, "not_found", "Alipay is not configured.")
    try:
        out_trade_no = alipay.returned(request.args.to_dict())
    except BadNotification as error:
        _refused("alipay", f"return: {error}")
        raise ApiError(400, "bad_signature", "支付宝返回的参数验签失败。") from error
    attempt = _attempt("alipay", out_trade_no)
    order = first(get_db(), "SELECT * FROM orders WHERE id = ?", [attempt["order_id"]])
    try:
        paid = alipay.query(out_trade_no)
    except ProviderError as error:
        current_app.logger.warning("alipay query: %s", error)
        paid = None
    if paid is not None and paid.out_trade_no == out_trade_no:
        payments.settle(get_db(), "alipay", paid)
    return redirect(f"/orders/{order['public_id']}", 303)


@bp.get("/pay/testpay/<out_trade_no>")
@allow(PUBLIC)
def testpay_page(out_trade_no: str):
    """The local test provider's cashier (for `make run`, demos and benchmarks only)."""
    if providers.get("testpay") is None:
        raise ApiError(404, "not_found", "测试支付未开启。")
    attempt = _attempt("testpay", out_trade_no)
    order = first(get_db(), "SELECT * FROM orders WHERE id = ?", [attempt["order_id"]])
    return render_template("registry/testpay.html", a=attempt, o=order, user=g.user)


@bp.post("/pay/testpay/<out_trade_no>")
@allow(PUBLIC)
def testpay_confirm(out_trade_no: str):
    """The test provider says the buyer paid: applied as a verified payment would be."""
    if providers.get("testpay") is None:
        raise ApiError(404, "not_found", "测试支付未开启。")
    attempt = _attempt("testpay", out_trade_no)
    transaction = "TP" + secrets.token_hex(12).upper()
    payments.settle(
        get_db(),
        "testpay",
        Paid(f"testpay:{transaction}", out_trade_no, transaction, attempt["amount_fen"]),
    )
    order = first(get_db(), "SELECT public_id FROM orders WHERE id = ?", [attempt["order_id"]])
    return redirect(f"/orders/{order['public_id']}", 303)
