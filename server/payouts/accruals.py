"""Accruals: a paid order's split, written in the payment's own transaction, with each
household's share queued for the ledger (`accrue`)."""

from typing import Any

from flask import current_app
from sqlite_utils import Database

from server import anchors, audit, chain, events
from server.clock import now_iso
from server.db import first, insert
from server.payouts.split import split_sale
from server.units import beijing_date, largest_remainder


def accrual_reference(accrual_id: int) -> str:
    return f"accrual:{accrual_id}"


def household_hashes(db: Database, household_ids: list[int]) -> dict[int, str]:
    """Each household's ledger hash: keccak(county salt ‖ code)."""
    if not household_ids:
        return {}
    marks = ",".join("?" for _ in household_ids)
    rows = db.execute(
        f"""SELECT h.id, coalesce(h.ledger_key, h.code), c.code FROM households h
            JOIN villages v ON v.id = h.village_id
            JOIN counties c ON c.id = v.county_id WHERE h.id IN ({marks})""",  # noqa: S608
        household_ids,
    )
    code_key = current_app.config["CODE_KEY"]
    salts: dict[str, bytes] = {}
    out = {}
    for household_id, code, county in rows:
        if county not in salts:
            salts[county] = chain.county_salt(code_key, county)
        out[household_id] = chain.household_hash(salts[county], code)
    return out


def accrue_order(db: Database, order_id: int) -> dict[str, Any] | None:
    """Split a paid order and accrue its households' shares (inside the caller's
    transaction). Returns the split, or None when the order was split before."""
    if first(db, "SELECT 1 FROM sale_splits WHERE order_id = ?", [order_id]):
        return None
    order = first(db, "SELECT * FROM orders WHERE id = ?", [order_id])
    if order is None or order["paid_at"] is None:
        raise ValueError(f"order {order_id} is not paid")
    bundle = first(
        db,
        """SELECT b.*, c.code AS county_code FROM bundles b JOIN counties c
           ON c.id = b.county_id WHERE b.id = ?""",
        [order["bundle_id"]],
    )
    parts = split_sale(order["amount_fen"], bundle, order["buyer_kind"])
    now = now_iso()
    paid_on = beijing_date(order["paid_at"]).isoformat()
    split = {
        "order_id": order_id,
        "bundle_id": bundle["id"],
        "county_id": bundle["county_id"],
        "buyer_kind": order["buyer_kind"],
        "amount_fen": order["amount_fen"],
        **parts,
        "policy_sha256": bundle["rules_sha256"],
        "paid_on": paid_on,
        "created_at": now,
    }
    insert(db, "sale_splits", split)
    anchors.queue_order(db, order)  # the amounts the split rests on, for reconcile
    grams = {
        row["household_id"]: (row["grams"], row["village_id"])
        for row in db.query(
            """SELECT ih.household_id, h.village_id, sum(ih.grams) AS grams
               FROM issuance_households ih JOIN issuances i ON i.id = ih.issuance_id
               JOIN households h ON h.id = ih.household_id
               WHERE i.bundle_id = ? GROUP BY ih.household_id HAVING sum(ih.grams) > 0""",
            [bundle["id"]],
        )
    }
    if parts["households_fen"] and not grams:
        raise ValueError("cannot share a non-zero total over zero weight")
    shares = largest_remainder(parts["households_fen"], {h: g for h, (g, _) in grams.items()})
    hashes = household_hashes(db, [h for h, fen in shares.items() if fen])
    accrued = []
    for household_id in sorted(shares):
        fen = shares[household_id]
        if not fen:
            continue
        row = {
            "order_id": order_id,
            "household_id": household_id,
            "village_id": grams[household_id][1],
            "county_id": bundle["county_id"],
            "grams": grams[household_id][0],
            "amount_fen": fen,
            "household_hash": hashes[household_id],
            "accrued_on": paid_on,
            "created_at": now,
        }
        row["id"] = insert(db, "accruals", row)
        chain.accrue(db, accrual_reference(row["id"]), row["household_hash"], fen)
        accrued.append(row)
    village_grams: dict[int, int] = {}
    for household_grams, village_id in grams.values():
        village_grams[village_id] = village_grams.get(village_id, 0) + household_grams
    collective = largest_remainder(parts["collective_fen"], village_grams)
    db.conn.executemany(
        "INSERT INTO village_accruals (order_id, village_id, grams, collective_fen) "
        "VALUES (?, ?, ?, ?)",
        [(order_id, v, village_grams[v], collective[v]) for v in sorted(village_grams)],
    )
    audit.record(
        db,
        "payout.accrued",
        f"order:{order_id}",
        {
            "households": len(accrued),
            "households_fen": parts["households_fen"],
            "collective_fen": parts["collective_fen"],
            "maintenance_fen": parts["maintenance_fen"],
            "commission_fen": parts["commission_fen"],
        },
    )
    return split | {"accruals": len(accrued)}


def announce_accrued(db: Database, order_id: int) -> None:
    """Tell the county's dashboards about a sale's accruals (sent once they commit)."""
    split = first(db, "SELECT * FROM sale_splits WHERE order_id = ?", [order_id])
    if split is None:
        return
    villages = [
        {"village": row["code"], "households": row["households"], "amount_fen": row["fen"]}
        for row in db.query(
            """SELECT v.code, count(*) AS households, sum(a.amount_fen) AS fen FROM accruals a
               JOIN villages v ON v.id = a.village_id WHERE a.order_id = ?
               GROUP BY v.code ORDER BY v.code""",
            [order_id],
        )
    ]
    events.announce(
        "payouts.accrued",
        {
            "order": order_id,
            "bundle": split["bundle_id"],
            "paid_on": split["paid_on"],
            "amount_fen": split["amount_fen"],
            "households_fen": split["households_fen"],
            "collective_fen": split["collective_fen"],
            "maintenance_fen": split["maintenance_fen"],
            "commission_fen": split["commission_fen"],
            "villages": villages,
        },
        split["county_id"],
        db=db,
    )
