"""The payouts JSON API for a bank integration (finance bearer token): make a T+1 batch,
read it (bank accounts masked: clear text only on the finance screen), record each
transfer as paid or failed."""

from datetime import date
from typing import Any

from flask import Blueprint, current_app, g, jsonify

from server import units
from server.access import allow
from server.db import first, get_db
from server.errors import ApiError
from server.payouts import settlement
from server.validation import json_body

bp = Blueprint("payouts_api", __name__, url_prefix="/api/v1")

BATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "settle_on": {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": "the settlement day (Beijing); default today",
        }
    },
    "example": {"settle_on": "2099-01-02"},
}

OUTCOME = {
    "type": "object",
    "additionalProperties": False,
    "required": ["outcome"],
    "properties": {
        "outcome": {"enum": ["paid", "failed"]},
        "reference": {
            "type": "string",
            "minLength": 4,
            "maxLength": 64,
            "description": "the bank's transfer reference (required when paid)",
        },
        "reason": {"type": "string", "maxLength": 200, "description": "why it failed"},
    },
    "example": {"outcome": "paid", "reference": "ICBC-20990102-000001"},
}


def _actor() -> str:
    return f"user:{g.user['id']}"


def _batch_view(batch: dict[str, Any]) -> dict[str, Any]:
    rows = get_db().query(
        """SELECT s.id, s.status, s.amount_fen, s.transfer_reference, s.failure_reason,
                  s.recorded_at, h.code AS household, h.bank_account_masked AS bank_account,
                  v.code AS village FROM settlements s
           JOIN households h ON h.id = s.household_id JOIN villages v ON v.id = s.village_id
           WHERE s.batch_id = ? ORDER BY s.id""",
        [batch["id"]],
    )
    return dict(batch) | {"settlements": list(rows)}


@bp.post("/settlement-batches")
@allow("finance", body=BATCH)
def make_batch():
    """Make (or return) the T+1 batch of a day: households owed at least the minimum."""
    data = json_body(BATCH)
    settle_on = data.get("settle_on") or units.today()
    try:
        date.fromisoformat(settle_on)
    except ValueError as error:
        raise ApiError(422, "validation_failed", "settle_on is not a date.") from error
    batch, created = settlement.create_batch(
        get_db(), settle_on, current_app.config["PAYOUT_MIN_TRANSFER_FEN"], _actor()
    )
    return jsonify(batch=_batch_view(batch), created=created), 201 if created else 200


@bp.get("/settlement-batches/<int:batch_id>")
@allow("finance")
def show_batch(batch_id: int):
    """One batch and its transfers (bank accounts masked)."""
    batch = (
        first(get_db(), "SELECT * FROM settlement_batches WHERE id = ?", [batch_id])
        if 0 < batch_id < 2**63
        else None
    )
    if batch is None:
        raise ApiError(404, "not_found", "No such settlement batch.")
    return jsonify(batch=_batch_view(batch))


@bp.post("/settlements/<int:settlement_id>/outcome")
@allow("finance", body=OUTCOME)
def record_outcome(settlement_id: int):
    """Record a transfer: paid (with the bank's reference; the same one again is a no-op)
    or failed (owed again, joins the next batch)."""
    data = json_body(OUTCOME)
    db = get_db()
    if data["outcome"] == "paid":
        if "reference" not in data:
            raise ApiError(422, "validation_failed", "A paid transfer needs its reference.")
        row, changed = settlement.record_transfer(db, settlement_id, data["reference"], _actor())
    else:
        reason = data.get("reason") or "transfer failed"
        row, changed = settlement.record_failure(db, settlement_id, reason, _actor())
    keys = ("id", "batch_id", "status", "amount_fen", "transfer_reference", "failure_reason")
    return jsonify(settlement={k: row[k] for k in keys}, changed=changed)
