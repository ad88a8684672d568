"""The door plate's money: totals for anyone who scans the plate, and one plain timeline —
earned from which sale for anyone; each transfer (when, to which bank card tail, its
transfer reference tail and ledger proof) only after the second factor."""

from typing import Any

from sqlite_utils import Database

from server import units
from server.dashboards import money
from server.plate import second_factor


def tail(reference: str | None, keep: int = 4) -> str | None:
    """A transfer reference shown by its tail only: …1234."""
    if not reference:
        return None
    return "…" + reference[-keep:]


def view(db: Database, household: dict[str, Any]) -> dict[str, Any]:
    """What the plate page shows of the money: totals always, payments once unlocked."""
    totals = money.household_totals(db, household["id"])
    found: dict[str, Any] = {"totals": totals, "unlocked": second_factor.unlocked(household)}
    if found["unlocked"]:
        ledger = money.household_ledger(db, household["id"])
        found["payments"] = [
            {
                "settle_on": s["settle_on"],
                "paid_on": units.day(s["recorded_at"], ""),  # the Beijing day, as the bureau
                "amount_fen": s["amount_fen"],
                "status": s["status"],
                "reference_tail": tail(s["transfer_reference"]),
                "tx_hash": s["tx_hash"],
                "chain_state": s["chain_state"],
            }
            for s in ledger["settlements"]
        ]
        found["accruals"] = ledger["accruals"][:50]
    return found


def timeline(db: Database, household: dict[str, Any], unlocked: bool) -> list[dict[str, Any]]:
    """The household's money, newest first: each sale's share earned (for anyone) and, once
    unlocked, each transfer with the bank card tail, reference tail and ledger proof."""
    ledger = money.household_ledger(db, household["id"])
    events = [
        {
            "kind": "earned",
            "sort": a["accrued_on"],
            "date": units.day(a["accrued_on"], ""),
            "amount": units.yuan_plain(a["amount_fen"]),
            "sale": a["bundle_name"],
            "tonnes": a["order_tonnes"],
            "tx_hash": a["tx_hash"] if unlocked else None,
        }
        for a in ledger["accruals"][:100]
    ]
    if unlocked:
        bank_tail = (household.get("bank_account_masked") or "")[-4:] or None
        events += [
            {
                "kind": "paid",
                "sort": (s["recorded_at"] or s["settle_on"] or "")[:10],
                "date": units.day(s["recorded_at"] or s["settle_on"], ""),
                "amount": units.yuan_plain(s["amount_fen"]),
                "status": s["status"],
                "bank_tail": bank_tail,
                "reference_tail": tail(s["transfer_reference"]),
                "tx_hash": s["tx_hash"],
                "chain_state": s["chain_state"],
            }
            for s in ledger["settlements"][:100]
        ]
    events.sort(key=lambda e: (e["sort"], e["kind"] == "paid"), reverse=True)
    return events
