"""WeChat Pay API v3 through the maintained `wechatpayv3` SDK.

Native (a QR code for a PC), H5 (a phone's browser) and JSAPI (inside WeChat, with an
openid) orders; notifications verified as the v3 spec says — the `Wechatpay-Timestamp`
within the replay window, the RSA-SHA256 signature over "timestamp\\nnonce\\nbody\\n" by the
platform certificate or the WeChat Pay public key named in `Wechatpay-Serial`, then
AES-256-GCM decryption of `resource` with the APIv3 key — and the merchant and app ids
checked; order query, close, refund and the daily trade bill.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from flask import current_app

from server.registry.providers.base import (
    BadNotification,
    Opened,
    Paid,
    ProviderError,
    beijing_expiry,
    notify_url,
    pem_setting,
)

CHANNELS = ("native", "h5", "jsapi")
NAME = "wechat"
METHOD = "wechat"


def client() -> Any:
    """The SDK client for this app's settings (made once per app)."""
    from wechatpayv3 import WeChatPay, WeChatPayType

    cached = current_app.extensions.get("wechatpay")
    if cached is not None:
        return cached
    config = current_app.config
    private_key = pem_setting("WECHATPAY_PRIVATE_KEY", "wechatpay/apiclient_key.pem")
    public_key_id = config.get("WECHATPAY_PUBLIC_KEY_ID")
    public_key = (
        pem_setting("WECHATPAY_PUBLIC_KEY", "wechatpay/pub_key.pem") if public_key_id else None
    )
    needed = {
        "WECHATPAY_APPID": config.get("WECHATPAY_APPID"),
        "WECHATPAY_APIV3_KEY": config.get("WECHATPAY_APIV3_KEY"),
        "WECHATPAY_CERT_SERIAL_NO": config.get("WECHATPAY_CERT_SERIAL_NO"),
        "WECHATPAY_PRIVATE_KEY": private_key,
    }
    if public_key_id:
        needed["WECHATPAY_PUBLIC_KEY"] = public_key
    missing = [name for name, value in needed.items() if not value]
    if missing:
        raise ProviderError(f"WeChat Pay needs {', '.join(missing)}")
    cert_dir = Path(config["INSTANCE_PATH"]) / "wechatpay" / "platform"
    base = config["WECHATPAY_API_BASE"].rstrip("/")
    default_base = base == "https://api.mch.weixin.qq.com"
    if not public_key_id and not default_base and not any(cert_dir.glob("*.pem")):
        raise ProviderError(f"put the platform certificates in {cert_dir}")
    try:
        pay = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=config["WECHATPAY_MCHID"],
            private_key=private_key,
            cert_serial_no=config["WECHATPAY_CERT_SERIAL_NO"],
            appid=config["WECHATPAY_APPID"],
            apiv3_key=config["WECHATPAY_APIV3_KEY"],
            notify_url=notify_url(NAME),
            cert_dir=None if public_key_id else str(cert_dir),
            timeout=(5, 15),
            public_key=public_key,
            public_key_id=public_key_id,
        )
    except Exception as error:  # the SDK raises bare Exceptions
        raise ProviderError(f"WeChat Pay client: {error}") from error
    # The SDK has no option for its gateway; a proxy or a local test server sets it here.
    pay._core._gate_way = base
    current_app.extensions["wechatpay"] = pay
    return pay


def _call(method, *args, **kwargs) -> tuple[int, dict[str, Any]]:
    try:
        code, text = method(*args, **kwargs)
    except Exception as error:  # network errors and the SDK's signature check
        raise ProviderError(f"WeChat Pay: {type(error).__name__}: {error}") from error
    try:
        body = json.loads(text) if text else {}
    except (TypeError, ValueError):
        body = {}
    return code, body


def create(order: dict[str, Any], out_trade_no: str, channel: str, **context: Any) -> Opened:
    """Open a Native, H5 or JSAPI order; time_expire is the reservation's end."""
    from wechatpayv3 import WeChatPayType

    pay_type = {
        "native": WeChatPayType.NATIVE,
        "h5": WeChatPayType.H5,
        "jsapi": WeChatPayType.JSAPI,
    }[channel]
    extra: dict[str, Any] = {}
    if channel == "h5":
        extra["scene_info"] = {
            "payer_client_ip": context.get("client_ip") or "127.0.0.1",
            "h5_info": {"type": "Wap"},
        }
    if channel == "jsapi":
        if not context.get("openid"):
            raise ProviderError("JSAPI needs the buyer's openid")
        extra["payer"] = {"openid": context["openid"]}
    code, body = _call(
        client().pay,
        description=f"四旁树碳汇 {order['tonnes']} 吨",
        out_trade_no=out_trade_no,
        amount={"total": order["amount_fen"], "currency": "CNY"},
        time_expire=beijing_expiry(order["expires_at"]).isoformat(timespec="seconds"),
        pay_type=pay_type,
        **extra,
    )
    if code != 200:
        raise ProviderError(f"WeChat Pay refused the order: {body.get('code')}")
    if channel == "native":
        return Opened(channel, pay_url=body["code_url"])
    if channel == "h5":
        return Opened(channel, pay_url=body["h5_url"])
    return Opened(channel, prepay_id=body["prepay_id"])


def jsapi_params(prepay_id: str) -> dict[str, str]:
    """What WeixinJSBridge's getBrandWCPayRequest takes, signed with the merchant key."""
    appid = current_app.config["WECHATPAY_APPID"]
    stamp, nonce, package = str(int(time.time())), secrets.token_hex(16), f"prepay_id={prepay_id}"
    signature = client().sign([appid, stamp, nonce, package])
    return {
        "appId": appid,
        "timeStamp": stamp,
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": signature,
    }


def notification(headers: dict[str, str], body: bytes) -> Paid | None:
    """Verify a payment notification; None for a verified event that is not a payment."""
    try:
        stamp = int(headers.get("Wechatpay-Timestamp", ""))
    except ValueError as error:
        raise BadNotification("no Wechatpay-Timestamp") from error
    window = current_app.config["PAYMENT_WEBHOOK_TOLERANCE_SECONDS"]
    if abs(time.time() - stamp) > window:
        raise BadNotification("Wechatpay-Timestamp outside the replay window")
    try:
        data = client().callback(headers, body.decode("utf-8"))
    except ProviderError:
        raise
    except Exception as error:  # unsupported algorithm, malformed body
        raise BadNotification(f"unreadable notification: {type(error).__name__}") from error
    if not data:
        raise BadNotification("signature or decryption failed")
    resource = data["resource"]
    config = current_app.config
    if resource.get("mchid") != config["WECHATPAY_MCHID"]:
        raise BadNotification("another merchant's notification")
    if resource.get("appid") != config["WECHATPAY_APPID"]:
        raise BadNotification("another app's notification")
    if data.get("event_type") != "TRANSACTION.SUCCESS" or resource.get("trade_state") != "SUCCESS":
        return None
    return Paid(
        event_id=str(data["id"]),
        out_trade_no=resource["out_trade_no"],
        transaction_id=resource["transaction_id"],
        amount_fen=int(resource["amount"]["total"]),
    )


def query(out_trade_no: str) -> Paid | None:
    """Ask WeChat Pay whether the trade was paid (the buyer came back before the notice)."""
    code, body = _call(client().query, out_trade_no=out_trade_no)
    if code != 200:
        raise ProviderError(f"WeChat Pay query failed: {body.get('code')}")
    if body.get("trade_state") != "SUCCESS":
        return None
    return Paid(
        event_id=f"query:{body['transaction_id']}",
        out_trade_no=body["out_trade_no"],
        transaction_id=body["transaction_id"],
        amount_fen=int(body["amount"]["total"]),
    )


def close(out_trade_no: str) -> None:
    code, body = _call(client().close, out_trade_no=out_trade_no)
    if code not in (200, 204):
        raise ProviderError(f"WeChat Pay close failed: {body.get('code')}")


def refund(
    out_refund_no: str, transaction_id: str, refund_fen: int, total_fen: int, reason: str
) -> tuple[str, str | None]:
    """Refund through WeChat Pay; returns (succeeded | processing, WeChat's refund id)."""
    code, body = _call(
        client().refund,
        out_refund_no=out_refund_no,
        amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        transaction_id=transaction_id,
        reason=reason[:80],
    )
    if code != 200:
        raise ProviderError(f"WeChat Pay refund refused: {body.get('code')}")
    status = {"SUCCESS": "succeeded", "PROCESSING": "processing"}.get(body.get("status"))
    if status is None:
        raise ProviderError(f"WeChat Pay refund status {body.get('status')}")
    return status, body.get("refund_id")


def fetch_statement(bill_date: str) -> bytes:
    """The day's trade bill (交易账单, all trades) as its text bytes."""
    code, body = _call(client().trade_bill, bill_date=bill_date)
    if code != 200:
        raise ProviderError(f"WeChat Pay trade bill refused: {body.get('code')}")
    try:
        code, data = client().download_bill(body["download_url"])
    except Exception as error:
        raise ProviderError(f"WeChat Pay bill download: {error}") from error
    if code != 200:
        raise ProviderError("WeChat Pay bill download refused")
    raw = data if isinstance(data, bytes) else data.encode()
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if body.get("hash_type") == "SHA1" and hashlib.sha1(text).hexdigest() != body.get(  # noqa: S324
        "hash_value"
    ):
        raise ProviderError("WeChat Pay bill does not match its SHA1")
    return text
