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
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlite_utils import Database

from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from server.instance import read_or_create_secret
from server.registry import orders

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


def parse_event(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from error
