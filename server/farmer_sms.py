"""Farmers' "money sent" text messages: the opt-in (switched on the door-plate page after
the second factor, `server.plate`), the queue written with the transfer, and the sender the
notice worker runs.

WeChat's browser, which opens most door plates, has no Web Push; a text message reaches any
phone. Nothing here stores a phone number: the registered phone is decrypted only to send,
and that access is audited.
"""

import json
import logging
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from server import audit, events, households, sms, units
from server.clock import iso, now, now_iso
from server.db import first, get_db, transaction

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
RETRY_BASE_S = 30


def opted_in(db: Database, household_id: int) -> bool:
    """Whether this household asked for a text message when money is sent."""
    row = first(db, "SELECT opted_out_at FROM sms_optins WHERE household_id = ?", [household_id])
    return row is not None and row["opted_out_at"] is None


def set_opt_in(db: Database, household: dict[str, Any], wanted: bool) -> None:
    """Turn the household's "money sent" text messages on or off (audited)."""
    with transaction(db):
        if wanted:
            db.execute(
                """INSERT INTO sms_optins (household_id, opted_in_at) VALUES (?, ?)
                   ON CONFLICT (household_id)
                   DO UPDATE SET opted_in_at = excluded.opted_in_at, opted_out_at = NULL""",
                [household["id"], now_iso()],
            )
        else:
            db.execute(
                "UPDATE sms_optins SET opted_out_at = ? WHERE household_id = ?",
                [now_iso(), household["id"]],
            )
        audit.record(
            db,
            "household.sms_opt_in" if wanted else "household.sms_opt_out",
            f"household:{household['code']}",
        )


@events.handles("money.sent")
def _on_money_sent(db: Database, household_id: int, amount_fen: int, **_: Any) -> None:
    queue_money_sent(db, household_id, amount_fen)


def queue_money_sent(db: Database, household_id: int, amount_fen: int) -> int:
    """Queue "money sent" for a household that opted in (inside the transfer's transaction);
    returns how many messages were queued (0 or 1)."""
    household = first(
        db,
        """SELECT h.id, h.phone_enc, h.bank_account_masked, v.name AS village
           FROM households h JOIN villages v ON v.id = h.village_id WHERE h.id = ?""",
        [household_id],
    )
    if household is None or household["phone_enc"] is None or not opted_in(db, household_id):
        return 0
    params = {
        "amount": units.yuan_plain(amount_fen),
        "village": household["village"],
        "tail": (household["bank_account_masked"] or "----")[-4:],
    }
    db["sms_messages"].insert(
        {
            "household_id": household_id,
            "template": "farmer_money_sent",
            "params": json.dumps(params, ensure_ascii=False),
            "next_attempt_at": now_iso(),
            "created_at": now_iso(),
        }
    )
    return 1


def send_due(db: Database, limit: int = 50) -> dict[str, int]:
    """Send the queued text messages that are due (in an app context); counts by outcome."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    due = list(
        db.query(
            """SELECT m.*, h.code, h.phone_enc FROM sms_messages m
               JOIN households h ON h.id = m.household_id
               WHERE m.state = 'pending' AND m.next_attempt_at <= ?
               ORDER BY m.next_attempt_at, m.id LIMIT ?""",
            [now_iso(), limit],
        )
    )
    for message in due:
        attempts = message["attempts"] + 1
        try:
            with transaction(db):
                phone = households.reveal(db, message, "phone", "farmer SMS: money sent")
            sms.send_sms(phone, message["template"], json.loads(message["params"]))
        except (sms.SmsError, ValueError) as error:
            gave_up = attempts >= MAX_ATTEMPTS or isinstance(error, ValueError)
            wait = timedelta(seconds=min(3600, RETRY_BASE_S * 2 ** (attempts - 1)))
            db["sms_messages"].update(
                message["id"],
                {
                    "attempts": attempts,
                    "state": "failed" if gave_up else "pending",
                    "next_attempt_at": iso(now() + wait),
                    "last_error": str(error)[:200],
                },
            )
            counts["failed" if gave_up else "retry"] += 1
            log.warning("SMS %s not sent (attempt %d): %s", message["id"], attempts, error)
            continue
        db["sms_messages"].update(
            message["id"], {"attempts": attempts, "state": "sent", "sent_at": now_iso()}
        )
        counts["sent"] += 1
    return counts


class WithSms:
    """The push worker's sender, also sending farmers' text messages each round."""

    def __init__(self, app, push_sender):
        self.app, self.push_sender = app, push_sender

    def run_once(self, *args, **kwargs) -> dict[str, int]:
        counts = self.push_sender.run_once(*args, **kwargs)
        with self.app.app_context():
            sent = send_due(get_db())
        return counts | {f"sms_{name}": n for name, n in sent.items()}
