"""The append-only, hash-chained audit log of every state change.

Each row's hash is an HMAC (keyed from the instance folder, so whoever can only edit the
database file cannot forge it) over the previous hash and the row's content. Editing or
deleting any row breaks the chain at that row; triggers refuse UPDATE and DELETE outright.
"""

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlite_utils import Database

from server.access import allow, current_actor
from server.clock import now_iso
from server.db import get_db, insert, transaction

GENESIS = "0" * 64
COLUMNS = ("seq", "at", "actor", "action", "subject", "detail", "prev_hash", "hash")
_INSERT = """INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""


def _row_hash(key: bytes, prev_hash: str, row: dict[str, Any]) -> str:
    content = json.dumps(
        [row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["detail"]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hmac.new(key, f"{prev_hash}|{content}".encode(), hashlib.sha256).hexdigest()


def audit_key() -> bytes:
    return bytes.fromhex(current_app.config["AUDIT_KEY"])


def record(
    db: Database,
    action: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """Append one entry, inside the transaction of the change it records (or its own)."""
    batch = db.__dict__.get("_audit_batch")
    if batch is not None:
        batch.append(_chained(batch, action, subject, detail, actor))
        return
    with transaction(db):
        row = _chained(_Head(db), action, subject, detail, actor)
        insert(db, "audit_log", dict(zip(COLUMNS, row, strict=True)))


class _Head(list):
    """The chain's end: rows chained but not yet written, after the last row in the table."""

    def __init__(self, db: Database):
        super().__init__()
        last = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.hash = (last[0], last[1]) if last else (0, GENESIS)
        self.key = audit_key()


def _chained(
    head: _Head, action: str, subject: str, detail: dict[str, Any] | None, actor: str | None
) -> tuple:
    row = {
        "seq": head.seq + 1,
        "at": now_iso(),
        "actor": actor or current_actor(),
        "action": action,
        "subject": subject,
        "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
    }
    row["prev_hash"] = head.hash
    row["hash"] = _row_hash(head.key, head.hash, row)
    head.seq, head.hash = row["seq"], row["hash"]
    return tuple(row[c] for c in COLUMNS)


@contextmanager
def batched(db: Database) -> Iterator[None]:
    """Entries recorded inside are chained as they come (the same seq, time and hash) and
    written together at the end, in one statement; an exception discards them. For one
    writer holding the transaction (a sync push), where nothing reads the log meanwhile."""
    if "_audit_batch" in db.__dict__:
        yield
        return
    db._audit_batch = batch = _Head(db)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del db._audit_batch  # type: ignore[attr-defined]
    db.conn.executemany(_INSERT, batch)


def verify_chain(db: Database, key: bytes) -> dict[str, Any]:
    """Walk the whole log; report the first row whose link or hash does not hold."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for row in db.query("SELECT * FROM audit_log ORDER BY seq"):
        problem = None
        if row["seq"] != expected_seq:
            problem = f"entry {expected_seq} is missing"
        elif row["prev_hash"] != prev_hash:
            problem = "link to the previous entry is broken"
        elif not hmac.compare_digest(row["hash"], _row_hash(key, prev_hash, row)):
            problem = "entry content does not match its hash"
        if problem:
            return {"intact": False, "entries": count, "broken_at": row["seq"], "problem": problem}
        prev_hash, expected_seq, count = row["hash"], row["seq"] + 1, count + 1
    return {"intact": True, "entries": count, "head": prev_hash}


bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")


@bp.get("/verify")
@allow("admin", "bureau")
def verify():
    """Check the audit log's hash chain end to end."""
    return jsonify(verify_chain(get_db(), audit_key()))
