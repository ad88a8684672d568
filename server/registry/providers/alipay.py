"""Alipay through `python-alipay-sdk` (RSA2): page pay (PC), wap pay (phone), asynchronous
notifications verified against Alipay's public key, the return URL checked by signature and
then by a trade query (its query string alone is never trusted), query, close and refund.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from server.registry.providers.base import (
    BadNotification,
    Opened,
    Paid,
    ProviderError,
    beijing_expiry,
    fen,
    notify_url,
    pem_setting,
)
from server.units import yuan_plain

CHANNELS = ("page", "wap")
NAME = "alipay"
METHOD = "alipay"
PAID_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")


def client() -> Any:
    """The SDK client for this app's settings (made once per app)."""
    from alipay import AliPay
    from alipay.utils import AliPayConfig

    cached = current_app.extensions.get("alipay")
    if cached is not None:
        return cached
    config = current_app.config
    private_key = pem_setting("ALIPAY_PRIVATE_KEY", "alipay/app_private_key.pem")
    public_key = pem_setting("ALIPAY_PUBLIC_KEY", "alipay/alipay_public_key.pem")
    if not (private_key and public_key):
        raise ProviderError("Alipay needs ALIPAY_PRIVATE_KEY and ALIPAY_PUBLIC_KEY")
    try:
        ali = AliPay(
            appid=config["ALIPAY_APPID"],
            app_notify_url=notify_url(NAME),
            app_private_key_string=private_key,
            alipay_public_key_string=public_key,
            sign_type="RSA2",
            config=AliPayConfig(timeout=15),
        )
    except Exception as error:
        raise ProviderError(f"Alipay client: {error}") from error
    ali._gateway = config["ALIPAY_GATEWAY"]  # the SDK only knows production and sandbox
    current_app.extensions["alipay"] = ali
    return ali


def _call(method, **kwargs) -> dict[str, Any]:
    try:
        return method(**kwargs)
    except Exception as error:  # network errors, AliPayException, AliPayValidationError
        raise ProviderError(f"Alipay: {type(error).__name__}: {error}") from error


def return_url() -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/pay/alipay/return"


def create(order: dict[str, Any], out_trade_no: str, channel: str, **context: Any) -> Opened:
    """A signed page-pay (PC) or wap-pay (phone) URL on Alipay's gateway."""
    ali = client()
    method = ali.api_alipay_trade_page_pay if channel == "page" else ali.api_alipay_trade_wap_pay
    signed = method(
        subject=f"四旁树碳汇 {order['tonnes']} 吨",
        out_trade_no=out_trade_no,
        total_amount=yuan_plain(order["amount_fen"]),
        return_url=return_url(),
        notify_url=notify_url(NAME),
        time_expire=beijing_expiry(order["expires_at"]).strftime("%Y-%m-%d %H:%M:%S"),
    )
    return Opened(channel, pay_url=f"{ali._gateway}?{signed}")


def _verified(params: dict[str, str]) -> dict[str, str]:
    data = dict(params)
    signature = data.pop("sign", None)
    if not signature:
        raise BadNotification("no sign")
    try:
        valid = client().verify(data, signature)
    except ProviderError:
        raise
    except Exception as error:  # wrong sign_type, malformed base64, unreadable values
        raise BadNotification(f"unverifiable: {type(error).__name__}") from error
    if not valid:
        raise BadNotification("signature does not match Alipay's public key")
    if data.get("app_id") != current_app.config["ALIPAY_APPID"]:
        raise BadNotification("another app's notification")
    return data


def notification(form: dict[str, str]) -> Paid | None:
    """Verify an asynchronous notification; None for a verified one that is not a payment."""
    data = _verified(form)
    if data.get("trade_status") not in PAID_STATES:
        return None
    try:
        amount = fen(data["total_amount"])
    except (KeyError, ValueError, ArithmeticError) as error:
        raise BadNotification("no readable total_amount") from error
    if not (data.get("notify_id") and data.get("trade_no") and data.get("out_trade_no")):
        raise BadNotification("notification without its ids")
    return Paid(data["notify_id"], data["out_trade_no"], data["trade_no"], amount)


def returned(args: dict[str, str]) -> str:
    """The out_trade_no a signed return URL names (the payment itself is then queried)."""
    data = _verified(args)
    if not data.get("out_trade_no"):
        raise BadNotification("return without out_trade_no")
    return data["out_trade_no"]


def query(out_trade_no: str) -> Paid | None:
    result = _call(client().api_alipay_trade_query, out_trade_no=out_trade_no)
    if result.get("code") == "40004":  # ACQ.TRADE_NOT_EXIST: the buyer has not paid yet
        return None
    if result.get("code") != "10000":
        raise ProviderError(f"Alipay query failed: {result.get('sub_code')}")
    if result.get("trade_status") not in PAID_STATES:
        return None
    return Paid(
        f"query:{result['trade_no']}",
        result["out_trade_no"],
        result["trade_no"],
        fen(result["total_amount"]),
    )


def close(out_trade_no: str) -> None:
    result = _call(client().api_alipay_trade_close, out_trade_no=out_trade_no)
    if result.get("code") not in ("10000", "40004"):
        raise ProviderError(f"Alipay close failed: {result.get('sub_code')}")


def refund(
    out_refund_no: str, transaction_id: str, refund_fen: int, total_fen: int, reason: str
) -> tuple[str, str | None]:
    result = _call(
        client().api_alipay_trade_refund,
        refund_amount=yuan_plain(refund_fen),
        trade_no=transaction_id,
        out_request_no=out_refund_no,
        refund_reason=reason[:80],
    )
    if result.get("code") != "10000":
        raise ProviderError(f"Alipay refund refused: {result.get('sub_code')}")
    return "succeeded", result.get("trade_no")
