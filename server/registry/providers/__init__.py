"""Payment providers: WeChat Pay (API v3, `wechatpayv3`), Alipay (`python-alipay-sdk`) and the
local `testpay`. Each is on when its settings are given; keys come from the environment or
the instance folder, never from the repository.

A provider opens a trade for an order (`create`), verifies its notifications (`notification`),
answers a query (`query`), closes a trade (`close`) and refunds (`refund`). What a verified
payment does to the order is decided in one place, `server/registry/payments.py`. What the
providers share (errors, `Paid`, `Opened`, settings and amount helpers) is `base`.
"""

from typing import Any

from flask import current_app

from server.registry.providers import alipay, testpay, wechat
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

__all__ = [
    "BadNotification",
    "Opened",
    "Paid",
    "ProviderError",
    "beijing_expiry",
    "fen",
    "notify_url",
    "pem_setting",
    "enabled",
    "get",
]


def enabled() -> list[str]:
    """Providers turned on by settings, in the order the order page offers them."""
    config = current_app.config
    found = []
    if config.get("WECHATPAY_MCHID"):
        found.append("wechat")
    if config.get("ALIPAY_APPID"):
        found.append("alipay")
    if config.get("TESTPAY_ENABLED"):
        found.append("testpay")
    return found


def get(name: str) -> Any:
    """The provider module for `name` when it is on; None otherwise."""
    if name not in enabled():
        return None
    return {"wechat": wechat, "alipay": alipay, "testpay": testpay}[name]
