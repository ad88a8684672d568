"""What every payment provider shares: its errors, a payment it vouches for, an opened trade,
and the helpers for settings, notification URLs, expiry times and amounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

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
