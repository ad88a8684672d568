"""The chain outbox: ledger writes queued inside the caller's own SQLite transaction.

Call these inside `server.db.transaction(db)` together with the business change they
record; the chain worker sends them later. Enqueuing the same write twice (same key, same
data) returns the first row; the same key with different data raises `OutboxConflict`.
"""

import json
import time
from typing import Any

from sqlite_utils import Database

from server.chain.ledger_items import ANCHOR_KINDS, KINDS, bytes32, hex32, validate
from server.clock import now_iso
from server.db import first, insert

STATES = ("pending", "submitted", "confirmed", "failed")


class OutboxConflict(ValueError):
    """The same ledger key was queued before with different data."""


def enqueue(db: Database, kind: str, payload: dict[str, Any]) -> int:
    """Queue one ledger write of `kind`; returns its outbox row id."""
    validate(kind, payload)
    key = KINDS[kind].key(payload)
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    existing = first(db, "SELECT id, payload FROM chain_outbox WHERE chain_key = ?", [key])
    if existing is not None:
        if existing["payload"] != text:
            raise OutboxConflict(f"{key} is already queued with different data")
        return existing["id"]
    return insert(
        db,
        "chain_outbox",
        {
            "kind": kind,
            "chain_key": key,
            "payload": text,
            "created_at": now_iso(),
            "created_ms": int(time.time() * 1000),
        },
    )


def _hex(value: str | bytes) -> str:
    return hex32(bytes32(value))


def anchor(db: Database, kind: str, reference: str, root: str | bytes) -> int:
    """Anchor a Merkle root: `kind` is one of ANCHOR_KINDS, `reference` names what it covers."""
    if kind not in ANCHOR_KINDS:
        raise ValueError(f"unknown anchor kind {kind!r}; one of {sorted(ANCHOR_KINDS)}")
    return enqueue(db, "anchor", {"kind": kind, "reference": reference, "root": _hex(root)})


def issue_range(
    db: Database, lot: str, first: int, count: int, details: str | bytes, *, buffer: bool = False
) -> int:
    """Issue tonnes `first`..`first+count-1` of a lot (serial prefix, e.g. `SP-360423-0001-2025`).

    A lot's ranges must be contiguous from 1; `details` hashes what the range stands for.
    """
    payload = {
        "lot": lot,
        "first": first,
        "count": count,
        "buffer": bool(buffer),
        "details": _hex(details),
    }
    return enqueue(db, "issue", payload)


def retire_range(db: Database, lot: str, first: int, count: int, certificate: str | bytes) -> int:
    """Retire issued tonnes `first`..`first+count-1` of a lot for a certificate hash."""
    payload = {"lot": lot, "first": first, "count": count, "certificate": _hex(certificate)}
    return enqueue(db, "retire", payload)


def set_split_policy(db: Database, bundle: str, policy: str | bytes) -> int:
    """Fix a bundle's split-policy hash on chain (once per bundle)."""
    return enqueue(db, "split_policy", {"bundle": bundle, "policy": _hex(policy)})


def accrue(db: Database, accrual_id: str, household: str | bytes, amount_fen: int) -> int:
    """Record that a household (its ledger hash) is owed `amount_fen` more."""
    payload = {"id": accrual_id, "household": _hex(household), "amount": amount_fen}
    return enqueue(db, "accrue", payload)


def settle(db: Database, settlement_id: str, household: str | bytes, amount_fen: int) -> int:
    """Record a transfer of `amount_fen` to a household; the contract refuses more than owed."""
    payload = {"id": settlement_id, "household": _hex(household), "amount": amount_fen}
    return enqueue(db, "settle", payload)


def get_row(db: Database, row_id: int) -> dict[str, Any] | None:
    """One outbox row with its payload decoded."""
    row = first(db, "SELECT * FROM chain_outbox WHERE id = ?", [row_id])
    if row is not None:
        row["payload"] = json.loads(row["payload"])
    return row


def percentile(values: list[int], share: float) -> int | None:
    """The nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(share * 1000) * len(ordered) // 1000))
    return ordered[rank - 1]


def status(db: Database) -> dict[str, Any]:
    """Counts by state and kind, the last block written, confirmation-time percentiles."""
    counts = {state: 0 for state in STATES}
    by_kind: dict[str, dict[str, int]] = {}
    for row in db.query("SELECT kind, state, count(*) AS n FROM chain_outbox GROUP BY 1, 2"):
        counts[row["state"]] += row["n"]
        by_kind.setdefault(row["kind"], {s: 0 for s in STATES})[row["state"]] = row["n"]
    recent = [
        row["confirm_ms"]
        for row in db.query(
            "SELECT confirm_ms FROM chain_outbox WHERE state = 'confirmed' "
            "AND confirm_ms IS NOT NULL ORDER BY id DESC LIMIT 10000"
        )
    ]
    last = first(db, "SELECT max(block_number) AS block FROM chain_txs WHERE state = 'mined'")
    oldest = first(
        db, "SELECT min(created_at) AS at FROM chain_outbox WHERE state IN ('pending','submitted')"
    )
    deployment = first(
        db,
        "SELECT chain_id, contract, address, block_number, deployed_at FROM chain_deployments "
        "ORDER BY id DESC LIMIT 1",
    )
    failures = [
        {"id": row["id"], "kind": row["kind"], "key": row["chain_key"], "error": row["last_error"]}
        for row in db.query(
            "SELECT id, kind, chain_key, last_error FROM chain_outbox WHERE state = 'failed' "
            "ORDER BY id DESC LIMIT 20"
        )
    ]
    total = sum(counts.values())
    return {
        **counts,
        "total": total,
        "confirmed_ratio": round(counts["confirmed"] / total, 4) if total else None,
        "oldest_waiting_at": oldest["at"] if oldest else None,
        "last_block": last["block"] if last else None,
        "confirmation_ms": {
            "p50": percentile(recent, 0.50),
            "p95": percentile(recent, 0.95),
            "samples": len(recent),
        },
        "by_kind": by_kind,
        "deployment": deployment,
        "recent_failures": failures,
    }
