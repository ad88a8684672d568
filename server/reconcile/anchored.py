"""What the money and the tonnes rest on, checked against the ledger (`server.anchors` queues
the anchors): the measurements behind each issuance, each paid order's amounts, the bank
details each transfer was made out to, retired tonnes and the audit log's head.

The ledger's own event log (every audit head and retirement ever anchored) is read too, so
deleting the database's record of an anchor hides nothing.
"""

from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database

from server.anchors import (
    ORDER_FIELDS,
    audit_reference,
    bank_reference,
    current_bank_hash,
    issuance_reference,
    measurements_root,
    order_reference,
    order_root,
    settlement_bank_root,
)
from server.audit import verify_chain
from server.chain.ledger_items import ANCHOR_KINDS, bytes32, chain_key, hex32, key32
from server.reconcile.items import Check, Difference


def checks(rec) -> Iterator[Any]:
    """Every anchored item's Check, and the Differences found from the database and the
    ledger's event log directly (`rec` is a `server.reconcile.Reconciler`)."""
    yield from _measurement_checks(rec)
    yield from _order_checks(rec)
    yield from _bank_checks(rec)
    yield from _retired_tonnes(rec)
    yield from _audit(rec)


def _anchor_check(rec, table: str, row: Any, item: str, kind: str, reference: str, root: str):
    return Check(
        table,
        row,
        item,
        chain_key("anchor", kind=kind, reference=reference),
        bytes32(root),
        rec.functions.anchors(ANCHOR_KINDS[kind], key32(reference)),
        bytes,
    )


def _measurement_checks(rec) -> Iterator[Any]:
    for row in rec.db.query("SELECT id FROM issuances ORDER BY id"):
        reference = issuance_reference(row["id"])
        root = measurements_root(rec.db, row["id"])
        yield _anchor_check(
            rec,
            "issuances",
            row["id"],
            "measurements behind the issuance",
            "issuance_measurements",
            reference,
            root,
        )


def _order_checks(rec) -> Iterator[Any]:
    columns = ", ".join(ORDER_FIELDS)
    for order in rec.db.query(
        f"SELECT {columns} FROM orders WHERE paid_at IS NOT NULL ORDER BY id"  # noqa: S608
    ):
        yield _anchor_check(
            rec,
            "orders",
            order["id"],
            "paid order's amounts",
            "order",
            order_reference(order["id"]),
            order_root(order),
        )


def _bank_checks(rec) -> Iterator[Any]:
    for batch in rec.db.query(
        "SELECT id, settle_on FROM settlement_batches WHERE id IN "
        "(SELECT batch_id FROM settlements WHERE bank_sha256 IS NOT NULL) ORDER BY id"
    ):
        yield _anchor_check(
            rec,
            "settlement_batches",
            batch["id"],
            "bank details of the transfers",
            "settlement_bank",
            bank_reference(batch["settle_on"]),
            settlement_bank_root(rec.db, batch["id"]),
        )
    if rec.pii_key is None:
        return
    latest = rec.db.query(
        """SELECT s.id, s.bank_sha256, s.created_at, h.id AS household_id, h.code,
                  h.village_id, h.bank_account_enc FROM settlements s
           JOIN households h ON h.id = s.household_id
           WHERE s.bank_sha256 IS NOT NULL AND s.id = (SELECT max(id) FROM settlements
               WHERE household_id = s.household_id AND bank_sha256 IS NOT NULL)
           ORDER BY h.id"""
    )
    for row in latest:
        now = current_bank_hash(rec.pii_key, row)
        if now == row["bank_sha256"] or _roster_changed_since(rec.db, row):
            continue
        yield Difference(
            "households",
            row["household_id"],
            f"bank details differ from settlement {row['id']} with no roster import since",
            row["bank_sha256"][:16] + "…",
            (now[:16] + "…") if now else "unreadable",
        )


def _roster_changed_since(db: Database, row: dict[str, Any]) -> bool:
    """A roster import of the household's village after the settlement (a lawful change)."""
    village = db.execute("SELECT code FROM villages WHERE id = ?", [row["village_id"]]).fetchone()
    found = db.execute(
        "SELECT 1 FROM audit_log WHERE action = 'roster.imported' AND subject = ? AND at > ?",
        [f"village:{village[0]}", row["created_at"]],
    ).fetchone()
    return found is not None


def _retired_tonnes(rec) -> Iterator[Any]:
    """A retired tonne stays retired: by the database's retirements and by the ledger's
    Retired events (which the database cannot delete)."""
    for row in rec.db.query(
        """SELECT r.serial, r.certificate_id, t.status, t.certificate_id AS tonne_cert
           FROM retirements r LEFT JOIN tonnes t ON t.serial = r.serial
           WHERE t.status IS NOT 'retired' OR t.certificate_id IS NOT r.certificate_id"""
    ):
        rec.checked += 1
        yield Difference(
            "tonnes",
            row["serial"],
            "retired tonne",
            f"{row['status']} {row['tonne_cert']}",
            f"retired {row['certificate_id']}",
        )
    series = {key32(r[0]): r[0] for r in rec.db.execute("SELECT DISTINCT series FROM tonnes")}
    for event in _events(rec, "Retired"):
        lot = series.get(bytes(event["args"]["lot"]))
        first, count = event["args"]["first"], event["args"]["count"]
        rec.checked += 1
        retired = 0
        if lot is not None:
            retired = rec.db.execute(
                "SELECT count(*) FROM tonnes WHERE series = ? AND seq BETWEEN ? AND ? "
                "AND status = 'retired'",
                [lot, first, first + count - 1],
            ).fetchone()[0]
        if retired != count:
            yield Difference(
                "tonnes",
                f"{lot or hex32(bytes(event['args']['lot']))}-{first:06d}+{count}",
                "tonnes retired on chain",
                f"{retired} retired",
                f"{count} retired",
            )


def _audit(rec) -> Iterator[Any]:
    if rec.audit_key is not None:
        verdict = verify_chain(rec.db, bytes.fromhex(rec.audit_key))
        rec.checked += 1
        if not verdict["intact"]:
            yield Difference(
                "audit_log", verdict["broken_at"], "hash chain", verdict["problem"], "intact"
            )
    by_hash = {r[1]: r[0] for r in rec.db.execute("SELECT seq, hash FROM audit_log")}
    for event in _events(rec, "Anchored", {"kind": ANCHOR_KINDS["audit_head"]}):
        rec.checked += 1
        root = bytes(event["args"]["root"]).hex()
        seq = by_hash.get(root)
        if seq is None or key32(audit_reference(seq)) != bytes(event["args"]["reference"]):
            yield Difference(
                "audit_log",
                seq if seq is not None else "?",
                "audit head anchored on chain (rows deleted or re-chained)",
                "missing" if seq is None else f"at seq {seq}",
                hex32(bytes(event["args"]["root"])),
            )


def _events(rec, name: str, filters: dict[str, Any] | None = None) -> list[Any]:
    event = getattr(rec.contract.events, name)
    return list(event.get_logs(from_block=0, argument_filters=filters or None))
