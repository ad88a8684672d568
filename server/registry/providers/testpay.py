"""The local test provider (`TESTPAY_ENABLED`): a cashier page on this server instead of a
provider's, for `make run`, demos and benchmarks. Never turn it on in production."""

import secrets
from typing import Any

from server.registry.providers.base import Opened, Paid

CHANNELS = ("test",)
NAME = "testpay"
METHOD = "testpay"


def create(order: dict[str, Any], out_trade_no: str, channel: str, **context: Any) -> Opened:
    return Opened(channel, pay_url=f"/pay/testpay/{out_trade_no}")


def query(out_trade_no: str) -> Paid | None:
    return None


def close(out_trade_no: str) -> None:
    return None


def refund(
    out_refund_no: str, transaction_id: str, refund_fen: int, total_fen: int, reason: str
) -> tuple[str, str | None]:
    return "succeeded", "TPR" + secrets.token_hex(10).upper()
