"""What the money and the tonnes rest on, anchored on the ledger so that an edit to the
database shows in `sipang reconcile` (DESIGN.md §11).

- the measurement rows behind each issuance (a Merkle root, queued with the issuance);
- each paid order's amounts (queued with its accruals);
- a keyed hash of the bank details each T+1 transfer is made out to (queued with the batch);
- the audit log's head, every AUDIT_ANCHOR_SECONDS by the chain worker, so rows deleted
  from its tail or a log re-chained with `audit.key` no longer match the ledger.

What `sipang reconcile` compares against these anchors is `server.reconcile.anchored`.
"""

import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlite_utils import Database

from server import chain
from server.db import transaction
from server.households import pii_context
from server.pii import decrypt_with_key

MEASUREMENT_FIELDS = (
    "id",
    "tree_id",
    "dbh_mm",
    "stems_mm",
    "height_cm",
    "latitude",
    "longitude",
    "gps_accuracy_m",
    "photo_sha256",
    "measured_by",
    "device_id",
    "client_time",
)
ORDER_FIELDS = (
    "id",
    "public_id",
    "bundle_id",
    "tonnes",
    "buyer_kind",
    "price_fen",
    "amount_fen",
    "farmers_fen",
)


def _sha256_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def merkle_root(leaves: list[str]) -> str:
    """sha256 Merkle root of hex leaves (an odd node is carried up); sha256("") when empty."""
    level = [bytes.fromhex(leaf) for leaf in leaves]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [
            hashlib.sha256(b"".join(pair)).digest() if len(pair) == 2 else pair[0] for pair in pairs
        ]
    return level[0].hex()


# -- measurements behind an issuance ---------------------------------------------------


def issuance_reference(issuance_id: int) -> str:
    return f"issuance:{issuance_id}"


def measurements_root(db: Database, issuance_id: int) -> str:
    """Merkle root of the measurement rows the issuance's calculation used (start and end
    of each tree's period), each leaf the sha256 of the row's fields, by measurement id."""
    columns = ", ".join(f"m.{name}" for name in MEASUREMENT_FIELDS)
    rows = db.query(
        f"""SELECT {columns} FROM measurements m WHERE m.id IN (
                SELECT l.start_measurement_id FROM credit_tree_lines l
                JOIN issuances i ON i.calculation_id = l.calculation_id WHERE i.id = ?
                UNION SELECT l.end_measurement_id FROM credit_tree_lines l
                JOIN issuances i ON i.calculation_id = l.calculation_id WHERE i.id = ?)
            ORDER BY m.id""",  # noqa: S608 - fixed column names
        [issuance_id, issuance_id],
    )
    return merkle_root([_sha256_json([row[name] for name in MEASUREMENT_FIELDS]) for row in rows])


def queue_measurements(db: Database, issuance_id: int) -> None:
    """Anchor the measurements behind an issuance (inside the issuance's transaction)."""
    root = measurements_root(db, issuance_id)
    chain.anchor(db, "issuance_measurements", issuance_reference(issuance_id), root)


# -- paid orders -------------------------------------------------------------------------


def order_reference(order_id: int) -> str:
    return f"order:{order_id}"


def order_root(order: dict[str, Any]) -> str:
    """sha256 of what a paid order's money rests on: tonnes, price, amount, farmers' share."""
    return _sha256_json([order[name] for name in ORDER_FIELDS])


def queue_order(db: Database, order: dict[str, Any]) -> None:
    """Anchor a paid order's amounts (inside the payment's transaction)."""
    chain.anchor(db, "order", order_reference(order["id"]), order_root(order))


# -- bank details at settlement ----------------------------------------------------------


def bank_hash(pii_key: str, account: str | None) -> str | None:
    """A keyed hash of a bank account (keyed from PII_KEY, so the chain learns nothing)."""
    if account is None:
        return None
    key = hmac.new(bytes.fromhex(pii_key), b"sipang bank details at settlement", "sha256")
    normalised = "".join(account.split()).upper()
    return hmac.new(key.digest(), normalised.encode(), hashlib.sha256).hexdigest()


def current_bank_hash(pii_key: str, household: dict[str, Any]) -> str | None:
    """The hash of a household's bank details as stored now; None if none or unreadable."""
    try:
        account = decrypt_with_key(
            pii_key, household["bank_account_enc"], pii_context(household["code"], "bank_account")
        )
    except (InvalidTag, ValueError):
        return None
    return bank_hash(pii_key, account)


def bank_reference(settle_on: str) -> str:
    return f"settlement_bank:{settle_on}"


def settlement_bank_root(db: Database, batch_id: int) -> str:
    """sha256 of a batch's `[[settlement id, bank hash], …]` by id."""
    rows = [
        [r["id"], r["bank_sha256"] or ""]
        for r in db.query(
            "SELECT id, bank_sha256 FROM settlements WHERE batch_id = ? ORDER BY id", [batch_id]
        )
    ]
    return _sha256_json(rows)


def queue_settlement_bank(db: Database, batch_id: int, settle_on: str) -> None:
    """Anchor the bank details a batch's transfers are made out to (inside its transaction)."""
    chain.anchor(
        db, "settlement_bank", bank_reference(settle_on), settlement_bank_root(db, batch_id)
    )


# -- the audit log's head ------------------------------------------------------------------


def audit_reference(seq: int) -> str:
    return f"audit:{seq}"


def anchor_audit_head(db: Database, min_interval_s: float = 0) -> int | None:
    """Queue the audit log's newest entry for the ledger, unless it is anchored already or
    the last anchor is younger than `min_interval_s`. Returns the anchored seq or None."""
    with transaction(db):
        head = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if head is None:
            return None
        last = db.execute(
            "SELECT payload, created_ms FROM chain_outbox WHERE kind = 'anchor' "
            "AND chain_key LIKE 'anchor:audit_head:%' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if last is not None:
            last_seq = int(json.loads(last[0])["reference"].split(":")[1])
            too_soon = time.time() * 1000 - last[1] < min_interval_s * 1000
            if last_seq >= head[0] or too_soon:
                return None
        chain.anchor(db, "audit_head", audit_reference(head[0]), head[1])
    return head[0]
