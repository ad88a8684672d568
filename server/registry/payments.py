"""Payment confirmation by a provider's signed webhook: a generic adapter and one test
provider (`testpay`).

The adapter checks, in order: the provider exists and is enabled; the signature header
`Sipang-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + raw body>` with the
provider's secret (constant-time compare); the timestamp within
`PAYMENT_WEBHOOK_TOLERANCE_SECONDS` of the server clock; the event id not seen before.
Every accepted event is stored (`payment_events`), so a replay changes nothing.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlite_utils import Database

from server import audit, events
from server.clock import iso_after, now_iso
from server.db import first, insert, transaction
from server.errors import ApiError
from server.instance import read_or_create_secret
from server.registry import orders, providers, refunds
from server.registry.providers import Paid, ProviderError

SIGNATURE_HEADER = "Sipang-Signature"

EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["event_id", "type", "order_id", "amount_fen", "reference"],
    "properties": {
        "event_id": {"type": "string", "minLength": 8, "maxLength": 64},
        "type": {"enum": ["payment.succeeded"]},
        "order_id": {"type": "string", "maxLength": 64},
        "amount_fen": {"type": "integer", "minimum": 1},
        "reference": {"type": "string", "minLength": 4, "maxLength": 64},
    },
    "example": {
        "event_id": "evt_0001abcd",
        "type": "payment.succeeded",
        "order_id": "Qm9yZGVyLWxpbmstZXhhbXBsZQ",
        "amount_fen": 10000,
        "reference": "TP-20260101-0001",
    },
}


@dataclass(frozen=True)
class Provider:
    """A payment provider speaking the signed-webhook protocol above."""

    name: str
    method: str  # how the payment is recorded on the order

    def enabled(self) -> bool:
        return bool(current_app.config.get(f"{self.name.upper()}_ENABLED"))

    def secret(self) -> bytes:
        configured = current_app.config.get(f"{self.name.upper()}_SECRET")
        if configured:
            return configured.encode()
        folder = Path(current_app.config["INSTANCE_PATH"])
        return read_or_create_secret(folder, f"{self.name}.key").encode()


PROVIDERS = {"testpay": Provider("testpay", "testpay")}


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header value a provider sends (the test provider's side, too)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(provider: Provider, header: str | None, body: bytes) -> None:
    """Refuse a missing or wrong signature, or a timestamp outside the replay window."""
    fields = dict(part.split("=", 1) for part in (header or "").split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        timestamp = None
    if timestamp is None or "v1" not in fields:
        raise ApiError(401, "bad_signature", f"Send a {SIGNATURE_HEADER} header: t=…,v1=….")
    expected = sign(provider.secret(), body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, fields["v1"]):
        raise ApiError(401, "bad_signature", "The webhook signature does not match.")
    window = current_app.config["PAYMENT_WEBHOOK_TOLERANCE_SECONDS"]
    if abs(time.time() - timestamp) > window:
        raise ApiError(
            401, "stale_timestamp", f"The webhook timestamp is more than {window} s away."
        )


def handle(db: Database, provider: Provider, event: dict[str, Any]) -> dict[str, Any]:
    """Apply a verified event once: pay its order if it matches, else record why not."""
    seen = first(
        db,
        "SELECT outcome FROM payment_events WHERE provider = ? AND event_id = ?",
        [provider.name, event["event_id"]],
    )
    if seen is not None:
        raise ApiError(
            409, "replayed", "This event was already received.", {"outcome": seen["outcome"]}
        )
    order = orders.get_order(db, event["order_id"])
    outcome = "paid"
    with transaction(db):
        db["payment_events"].insert(
            {
                "provider": provider.name,
                "event_id": event["event_id"],
                "order_public_id": event["order_id"],
                "amount_fen": event["amount_fen"],
                "outcome": "received",
                "received_at": now_iso(),
            }
        )
        if order is None:
            outcome = "unknown_order"
        elif order["amount_fen"] != event["amount_fen"]:
            outcome = "amount_mismatch"
        else:
            try:
                with transaction(db):
                    orders.confirm_payment(
                        db, order, provider.method, event["reference"], f"provider:{provider.name}"
                    )
            except ApiError as error:
                outcome = error.code
        db.execute(
            "UPDATE payment_events SET outcome = ? WHERE provider = ? AND event_id = ?",
            [outcome, provider.name, event["event_id"]],
        )
    return {"event_id": event["event_id"], "outcome": outcome}


# --- WeChat Pay, Alipay and the local test provider (server/registry/providers) ----------


def open_attempt(
    db: Database, order: dict[str, Any], provider_name: str, channel: str, **context: Any
) -> dict[str, Any]:
    """Open (or reuse) a trade with a provider for a reserved order."""
    provider = providers.get(provider_name)
    if provider is None:
        raise ApiError(404, "not_found", "这种付款方式未开通。")
    if channel not in provider.CHANNELS:
        raise ApiError(422, "validation_failed", "没有这种付款渠道。")
    orders.release_expired_now(db)
    order = first(db, "SELECT * FROM orders WHERE id = ?", [order["id"]])
    if order["status"] != "reserved":
        raise ApiError(409, "not_reserved", "订单不在待付款状态。")
    reuse = first(
        db,
        """SELECT * FROM payment_attempts WHERE order_id = ? AND provider = ? AND channel = ?
           AND status = 'open' AND channel != 'jsapi' ORDER BY id DESC LIMIT 1""",
        [order["id"], provider_name, channel],
    )
    if reuse is not None:
        return reuse
    out_trade_no = "SP" + secrets.token_hex(14).upper()
    try:
        opened = provider.create(order, out_trade_no, channel, **context)
    except ProviderError as error:
        current_app.logger.warning("payment provider %s: %s", provider_name, error)
        raise ApiError(502, "provider_unavailable", "支付渠道暂时无法下单，请稍后再试。") from error
    with transaction(db):
        attempt_id = insert(
            db,
            "payment_attempts",
            {
                "order_id": order["id"],
                "provider": provider_name,
                "channel": channel,
                "out_trade_no": out_trade_no,
                "amount_fen": order["amount_fen"],
                "pay_url": opened.pay_url,
                "prepay_id": opened.prepay_id,
                "created_at": now_iso(),
            },
        )
        db.execute("UPDATE orders SET pay_method = ? WHERE id = ?", [provider_name, order["id"]])
        audit.record(
            db,
            "payment.opened",
            f"order:{order['id']}",
            {"provider": provider_name, "channel": channel, "out_trade_no": out_trade_no},
        )
    return first(db, "SELECT * FROM payment_attempts WHERE id = ?", [attempt_id])


def settle(db: Database, provider_name: str, paid: Paid) -> dict[str, Any]:
    """Apply a payment the provider vouched for, once; refund what cannot be applied.

    Returns {"outcome", "replayed"}. The same event again, or the same payment learnt by
    query and then by notification, changes nothing."""
    orders.release_expired_now(db)
    refund_id = None
    with transaction(db):
        seen = first(
            db,
            "SELECT outcome FROM payment_events WHERE provider = ? AND event_id = ?",
            [provider_name, paid.event_id],
        )
        if seen is not None:
            return {"outcome": seen["outcome"], "replayed": True}
        attempt = first(
            db,
            "SELECT * FROM payment_attempts WHERE provider = ? AND out_trade_no = ?",
            [provider_name, paid.out_trade_no],
        )
        applied = first(
            db,
            "SELECT id FROM payment_attempts WHERE provider = ? AND transaction_id = ?",
            [provider_name, paid.transaction_id],
        )
        order = (
            first(db, "SELECT * FROM orders WHERE id = ?", [attempt["order_id"]])
            if attempt is not None
            else None
        )
        if applied is not None:
            outcome = "duplicate"
        elif attempt is None:
            outcome = "unknown_order"
        else:
            db.execute(
                "UPDATE payment_attempts SET transaction_id = ?, paid_fen = ? WHERE id = ?",
                [paid.transaction_id, paid.amount_fen, attempt["id"]],
            )
            if paid.amount_fen != attempt["amount_fen"]:
                outcome = "amount_mismatch"
            else:
                try:
                    with transaction(db):
                        orders.confirm_payment(
                            db,
                            order,
                            provider_name,
                            paid.transaction_id,
                            f"provider:{provider_name}",
                        )
                    outcome = "paid"
                except ApiError as error:
                    outcome = error.code
            db.execute(
                "UPDATE payment_attempts SET status = ? WHERE id = ?",
                ["paid" if outcome == "paid" else "refunded", attempt["id"]],
            )
            if outcome != "paid":
                refund_id = refunds.open_refund(
                    db,
                    provider=provider_name,
                    transaction_id=paid.transaction_id,
                    amount_fen=paid.amount_fen,
                    reason=outcome,
                    actor=f"provider:{provider_name}",
                    order_id=order["id"],
                    attempt_id=attempt["id"],
                )
        db["payment_events"].insert(
            {
                "provider": provider_name,
                "event_id": paid.event_id,
                "order_public_id": order["public_id"] if order else None,
                "amount_fen": paid.amount_fen,
                "outcome": outcome,
                "received_at": now_iso(),
                "out_trade_no": paid.out_trade_no,
                "transaction_id": paid.transaction_id,
            }
        )
        audit.record(
            db,
            "payment.notified",
            f"order:{order['id']}" if order else f"trade:{provider_name}",
            {"provider": provider_name, "outcome": outcome, "amount_fen": paid.amount_fen},
            actor=f"provider:{provider_name}",
        )
    if refund_id is not None:
        refunds.send(db, refund_id)
    return {"outcome": outcome, "replayed": False}


QUERY_EVERY_SECONDS = 3


def check_open_attempts(db: Database, order: dict[str, Any]) -> None:
    """The buyer is back before the notification: ask the provider about open trades
    (at most every few seconds per trade) and apply what was paid."""
    if order["status"] != "reserved":
        return
    cutoff = iso_after(seconds=-QUERY_EVERY_SECONDS)
    attempts = db.query(
        """SELECT * FROM payment_attempts WHERE order_id = ? AND status = 'open'
           AND provider != 'testpay' AND (queried_at IS NULL OR queried_at < ?)""",
        [order["id"], cutoff],
    )
    for attempt in list(attempts):
        provider = providers.get(attempt["provider"])
        if provider is None:
            continue
        with transaction(db):
            db.execute(
                "UPDATE payment_attempts SET queried_at = ? WHERE id = ?",
                [now_iso(), attempt["id"]],
            )
        try:
            paid = provider.query(attempt["out_trade_no"])
        except ProviderError as error:
            current_app.logger.warning("query %s: %s", attempt["provider"], error)
            continue
        if paid is not None and paid.out_trade_no == attempt["out_trade_no"]:
            settle(db, attempt["provider"], paid)


@events.handles("reservations.expired")
def close_expired_attempts(db: Database) -> int:
    """Close the providers' trades of expired reservations (best effort; each trade also
    carries the reservation's end as its own expiry)."""
    rows = list(
        db.query(
            """SELECT a.* FROM payment_attempts a JOIN orders o ON o.id = a.order_id
               WHERE a.status = 'open' AND o.status = 'expired'"""
        )
    )
    for attempt in rows:
        provider = providers.get(attempt["provider"])
        try:
            if provider is not None and attempt["provider"] != "testpay":
                provider.close(attempt["out_trade_no"])
        except ProviderError as error:
            current_app.logger.warning("close %s: %s", attempt["provider"], error)
            continue
        with transaction(db):
            db.execute(
                """UPDATE payment_attempts SET status = 'closed', closed_at = ?
                   WHERE id = ? AND status = 'open'""",
                [now_iso(), attempt["id"]],
            )
    return len(rows)
