"""The server side of push: apply each operation exactly once, in each device's order.

Every operation is looked up by `op_id` first, so a replay returns the stored result; an
`op_id` sent again with other content is refused (`rejected`, code `conflict`), the first
kept and the device recorded in `sync_replay_conflicts`. A
device's operations apply in `device_seq` order: one that arrives after a gap is held until
the missing one comes. Each operation runs in its own savepoint, so a rejected one leaves
nothing behind; the caller wraps the whole push in one transaction.

Given `optimistic` (a context manager), a push first runs inside it without a savepoint per
operation; the first operation refused, or any error, rolls that run back and the push runs
again one savepoint per operation, so the results and rows are the same either way.

Each run of a push has a `memo` the apply function may keep things in that no operation of
the push can change (rows it only reads, or a row found present by a read, which only undoing
the whole run could remove); a run that is undone takes its memo with it.
"""

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlite_utils import Database

from sync.protocol import Operation


class OperationRejected(Exception):
    """An operation that is well-formed but cannot be applied; it consumes its sequence."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


Apply = Callable[[Operation], dict[str, Any]]


class _Refused(Exception):
    """An operation refused in an optimistic run: undo the run, apply one by one."""


def _stored_result(row: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    result = json.loads(row["result"])
    return {
        "op_id": row["op_id"],
        "device_seq": row["device_seq"],
        "status": status or row["status"],
        "server_seq": row["server_seq"],
        **result,
    }


_INSERT_OP = """INSERT INTO sync_ops (op_id, device_id, device_seq, record_id, kind, payload,
    client_time, base_version, received_at, applied_at, status, reason, result)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def _process(
    db: Database,
    device_id: str,
    op: Operation,
    apply: Apply,
    received_at: str,
    now: str,
    guarded: bool = True,
) -> dict[str, Any]:
    conn = db.conn
    if not guarded:
        try:
            outcome = apply(op)
        except OperationRejected as rejected:
            raise _Refused from rejected
        status, reason = "applied", None
    else:
        conn.execute("SAVEPOINT sync_op")  # a rejected operation leaves nothing behind
        try:
            outcome = apply(op)
        except OperationRejected as rejected:
            conn.execute("ROLLBACK TO sync_op")
            status, reason = "rejected", rejected.reason
            outcome = {"code": rejected.code, "reason": rejected.reason}
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO sync_op")
                conn.execute("RELEASE sync_op")
            raise
        else:
            status, reason = "applied", None
        conn.execute("RELEASE sync_op")
    encoded = json.dumps(outcome, ensure_ascii=False)
    server_seq = conn.execute(
        _INSERT_OP,
        [
            op.op_id,
            device_id,
            op.device_seq,
            op.record_id,
            op.kind,
            json.dumps(op.payload, ensure_ascii=False),
            op.client_time,
            op.base_version,
            received_at,
            now,
            status,
            reason,
            encoded,
        ],
    ).lastrowid
    return {
        "op_id": op.op_id,
        "device_seq": op.device_seq,
        "status": status,
        "server_seq": server_seq,
        **outcome,
    }


def content_sha256(device_id: str, op: Operation) -> str:
    """What an op_id stands for: its device, sequence, record, kind, payload and times."""
    text = json.dumps(
        [
            device_id,
            op.device_seq,
            op.record_id,
            op.kind,
            op.payload,
            op.client_time,
            op.base_version,
        ],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_operation(row: dict[str, Any]) -> Operation:
    return Operation(
        row["op_id"],
        row["device_seq"],
        row["record_id"],
        row["kind"],
        json.loads(row["payload"]),
        row["client_time"],
        row["base_version"],
    )


def _same_content(stored: dict[str, Any], device_id: str, op: Operation) -> bool:
    return content_sha256(stored["device_id"], _stored_operation(stored)) == content_sha256(
        device_id, op
    )


def _replay_conflict(
    db: Database, stored: dict[str, Any], device_id: str, op: Operation, now: str
) -> dict[str, Any]:
    """An op_id sent again with other content: the first is kept, the device flagged."""
    db["sync_replay_conflicts"].insert(
        {
            "op_id": op.op_id,
            "device_id": device_id,
            "kept_sha256": content_sha256(stored["device_id"], _stored_operation(stored)),
            "refused_sha256": content_sha256(device_id, op),
            "at": now,
        }
    )
    return {
        "op_id": op.op_id,
        "device_seq": op.device_seq,
        "status": "rejected",
        "code": "conflict",
        "reason": f"op_id {op.op_id} was used before for other content; the first is kept",
        "server_seq": stored["server_seq"],
    }


def _held(row: dict[str, Any]) -> Operation:
    return Operation(
        row["op_id"],
        row["device_seq"],
        row["record_id"],
        row["kind"],
        json.loads(row["payload"]),
        row["client_time"],
        row["base_version"],
    )


def memo(db: Database) -> dict[Any, Any]:
    """The current run's memo (see above); outside a push, a new empty dict each call."""
    kept = db.__dict__.get("_push_memo")
    return {} if kept is None else kept


def remembered(db: Database, key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, once per run of a push for `key` (every call outside a push)."""
    kept = memo(db)
    if key not in kept:
        kept[key] = compute()
    return kept[key]


def _rows(db: Database, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor]


def push(
    db: Database,
    device_id: str,
    operations: list[Operation],
    apply: Apply,
    now: str,
    optimistic: Callable[[], AbstractContextManager[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Apply a batch; one result per operation given and per held one that now applied.
    With `optimistic`, first all at once inside it, then one by one if anything fails."""
    if optimistic is None:
        return _push(db, device_id, operations, apply, now, guarded=True)
    conn = db.conn
    conn.execute("SAVEPOINT sync_batch")
    try:
        with optimistic():
            results = _push(db, device_id, operations, apply, now, guarded=False)
    except Exception:  # refused or failed: the guarded run gives the answer (or the error)
        if not conn.in_transaction:
            raise  # the error ended the transaction itself: nothing to run again inside
        conn.execute("ROLLBACK TO sync_batch")
        conn.execute("RELEASE sync_batch")
        return _push(db, device_id, operations, apply, now, guarded=True)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO sync_batch")
            conn.execute("RELEASE sync_batch")
        raise
    conn.execute("RELEASE sync_batch")
    return results


def _push(
    db: Database,
    device_id: str,
    operations: list[Operation],
    apply: Apply,
    now: str,
    guarded: bool,
) -> list[dict[str, Any]]:
    db._push_memo = {}  # type: ignore[attr-defined]  # a fresh one for every run
    try:
        return _run(db, device_id, operations, apply, now, guarded)
    finally:
        del db._push_memo  # type: ignore[attr-defined]


def _run(
    db: Database,
    device_id: str,
    operations: list[Operation],
    apply: Apply,
    now: str,
    guarded: bool,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    conn = db.conn
    last_seq = conn.execute("SELECT last_seq FROM devices WHERE id = ?", [device_id]).fetchone()[0]
    known = {
        row["op_id"]: row
        for row in _rows(
            db,
            "SELECT * FROM sync_ops WHERE op_id IN (SELECT value FROM json_each(?))",
            [json.dumps([op.op_id for op in operations])],
        )
    }
    has_held = conn.execute(
        "SELECT 1 FROM sync_held WHERE device_id = ? LIMIT 1", [device_id]
    ).fetchone()
    answered: set[str] = set()  # the op_ids in `results`

    def answer(result: dict[str, Any]) -> None:
        results.append(result)
        answered.add(result["op_id"])

    for op in sorted(operations, key=lambda o: o.device_seq):
        if op.op_id in answered:
            continue  # held before and applied just now, behind the one that filled the gap
        stored = known.get(op.op_id)
        if stored is not None:
            if _same_content(stored, device_id, op):
                answer(_stored_result(stored, "duplicate"))
            else:
                answer(_replay_conflict(db, stored, device_id, op, now))
            continue
        if op.device_seq <= last_seq:
            answer(
                {
                    "op_id": op.op_id,
                    "device_seq": op.device_seq,
                    "status": "rejected",
                    "code": "sequence_reused",
                    "reason": f"device_seq {op.device_seq} was already used by another operation",
                }
            )
            continue
        if op.device_seq > last_seq + 1:
            conn.execute(  # a held one sent again stays; another op for its seq replaces it
                """INSERT OR REPLACE INTO sync_held (op_id, device_id, received_at, device_seq,
                       record_id, kind, payload, client_time, base_version)
                   SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?
                   WHERE NOT EXISTS (SELECT 1 FROM sync_held WHERE op_id = ?)""",
                [
                    op.op_id,
                    device_id,
                    now,
                    op.device_seq,
                    op.record_id,
                    op.kind,
                    json.dumps(op.payload, ensure_ascii=False),
                    op.client_time,
                    op.base_version,
                    op.op_id,
                ],
            )
            has_held = True
            answer(
                {
                    "op_id": op.op_id,
                    "device_seq": op.device_seq,
                    "status": "held",
                    "reason": f"waiting for device_seq {last_seq + 1}",
                }
            )
            continue
        answer(_process(db, device_id, op, apply, now, now, guarded))
        last_seq = op.device_seq
        while has_held and (
            held := next(
                iter(
                    _rows(
                        db,
                        "SELECT * FROM sync_held WHERE device_id = ? AND device_seq = ?",
                        [device_id, last_seq + 1],
                    )
                ),
                None,
            )
        ):
            conn.execute("DELETE FROM sync_held WHERE op_id = ?", [held["op_id"]])
            result = _process(db, device_id, _held(held), apply, held["received_at"], now, guarded)
            results[:] = [r for r in results if r["op_id"] != held["op_id"]] + [result]
            answered.add(result["op_id"])
            last_seq += 1
    conn.execute("UPDATE devices SET last_seq = ? WHERE id = ?", [last_seq, device_id])
    return results


def stale_holds(db: Database, older_than: str) -> list[dict[str, Any]]:
    """Operations held behind a gap since before `older_than` (the missing one never came)."""
    return list(
        db.query(
            """SELECT device_id, min(device_seq) AS first_held, count(*) AS held,
                                   min(received_at) AS since
                            FROM sync_held WHERE received_at < ? GROUP BY device_id""",
            [older_than],
        )
    )
