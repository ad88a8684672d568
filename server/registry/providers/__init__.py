"""Payment providers: WeChat Pay (API v3, `wechatpayv3`), Alipay (`python-alipay-sdk`) and the
local `testpay`. Each is on when its settings are given; keys come from the environment or
the instance folder, never from the repository.

A provider opens a trade for an order (`create`), verifies its notifications (`notification`),
answers a query (`query`), closes a trade (`close`) and refunds (`refund`). What a verified
payment does to the order is decided in one place, `server/registry/payments.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import current_app

from server.units import BEIJING


class ProviderError(Exception):
    """The provider refused or could not be reached."""


class BadNotification(Exception):
    """A notification that is not the provider's: wrong signature, key, time or merchant."""


@dataclass
class Paid:
    """A payment the provider vouches for (from a verified notification or a query)."""

    event_id: str
    out_trade_no: str
    transaction_id: str
    amount_fen: int


@dataclass
class Opened:
    """A trade opened with a provider: where the buyer goes (or what they scan) to pay."""

    channel: str
    pay_url: str | None = None
    prepay_id: str | None = None


def pem_setting(name: str, filename: str) -> str | None:
    """A PEM key from the setting `name`, else from `filename` in the instance folder."""
    value = current_app.config.get(name)
    if value:
        return value
    path = Path(current_app.config["INSTANCE_PATH"]) / filename
    return path.read_text() if path.exists() else None


def notify_url(provider: str) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/api/v1/payments/{provider}/notify"


def beijing_expiry(expires_at: str) -> datetime:
    """The order's UTC expiry as a Beijing time (what providers expect)."""
    return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).astimezone(BEIJING)


def fen(yuan_text: str) -> int:
    """ "100.00" → 10000; ValueError for anything that is not a whole number of fen."""
    amount = Decimal(str(yuan_text).strip()) * 100
    if amount != amount.to_integral_value():
        raise ValueError("not a whole number of fen")
    return int(amount)


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
    if name == "wechat":
        from server.registry.providers import wechat

        return wechat
    if name == "alipay":
        from server.registry.providers import alipay

        return alipay
    from server.registry.providers import testpay

    return testpay
