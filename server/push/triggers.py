"""The business events that notify someone, each run inside its change's transaction: called
by the registry, or handling an event the carbon and payout code publish (`server.events`)."""

from typing import Any

from sqlite_utils import Database

from server import events, units
from server.db import first
from server.push.kinds import flag_label
from server.push.queue import notify


def certificate_ready(db: Database, order: dict[str, Any], cert_id: str, tonnes: int) -> int:
    """A certificate was made for an order: tell the buyer's browsers."""
    params = {"order_id": order["public_id"], "tonnes": tonnes, "certificate_id": cert_id}
    return notify(db, "certificate_ready", order["id"], params)


def sample_assigned(
    db: Database, verification_id: int, verifier_id: int, village_name: str, trees: int
) -> int:
    """A verification sample was drawn and assigned: tell the verifier."""
    params = {"verification_id": verification_id, "village": village_name, "trees": trees}
    return notify(db, "sample_assigned", verifier_id, params)


@events.handles("record.flagged")
def record_flagged(db: Database, measurement_id: str, flags: list[dict[str, str]]) -> int:
    """A synced measurement raised plausibility flags: tell the phone that sent it."""
    row = first(
        db,
        """SELECT m.device_id, h.code, h.seq, s.name_zh FROM measurements m
           JOIN trees t ON t.id = m.tree_id JOIN households h ON h.id = t.household_id
           JOIN species s ON s.id = t.species_id WHERE m.id = ?""",
        [measurement_id],
    )
    if not flags or row is None or row["device_id"] is None:
        return 0
    reason = flag_label(flags[0]["code"])
    if len(flags) > 1:
        reason += f"等 {len(flags)} 项"
    params = {
        "household_code": row["code"],
        "household_seq": f"{row['seq']:04d}",
        "species": row["name_zh"],
        "reason": reason,
    }
    return notify(db, "record_flagged", row["device_id"], params)


@events.handles("money.sent")
def money_sent(db: Database, household_id: int, household_code: str, amount_fen: int) -> int:
    """A settlement transfer to a household was recorded: tell the farmer's browsers (the
    text message, when the household opted in, is `server.farmer_sms`)."""
    params = {"household_code": household_code, "amount": units.yuan_plain(amount_fen)}
    return notify(db, "money_sent", household_id, params)
