"""sync/engine.py alone, on the real SQLite file: each operation once, in each phone's order.

The engine is given the operations and an `apply` that writes to a table of the test's own,
so what it does is seen apart from trees, HTTP and devices' tokens.
"""

import json
import uuid

import pytest

from server.db import transaction
from sync import engine
from sync.protocol import Operation

NOW = "2026-11-21T01:00:00.000Z"


def op(seq: int, value: int = 0, op_id: str | None = None) -> Operation:
    return Operation(
        op_id or str(uuid.uuid4()),
        seq,
        f"record-{seq}",
        "tree.measure",
        {"value": value},
        "2026-11-21T09:00:00+08:00",
        None,
    )


class Recorder:
    """An `apply` that writes one row per operation, and refuses the values it is told to."""

    def __init__(self, db, refuse: tuple[int, ...] = (), explode: tuple[int, ...] = ()):
        self.db, self.refuse, self.explode = db, refuse, explode
        self.applied: list[int] = []
        db.execute("CREATE TABLE IF NOT EXISTS applied_here (seq INTEGER, value INTEGER)")

    def __call__(self, operation: Operation) -> dict:
        value = operation.payload["value"]
        self.db.execute(
            "INSERT INTO applied_here VALUES (?, ?)", [operation.device_seq, value]
        )  # written before the refusal: the refusal must take it back
        if value in self.explode:
            raise RuntimeError("a bug in apply")
        if value in self.refuse:
            raise engine.OperationRejected("invalid", f"value {value} refused")
        self.applied.append(operation.device_seq)
        return {"version": operation.device_seq}

    def rows(self) -> list[tuple[int, int]]:
        return self.db.execute("SELECT seq, value FROM applied_here ORDER BY rowid").fetchall()


def push(db, device: str, operations: list[Operation], apply: Recorder) -> list[dict]:
    with transaction(db):
        return engine.push(db, device, operations, apply, NOW)


def statuses(results: list[dict]) -> list[tuple[int, str]]:
    return [(r["device_seq"], r["status"]) for r in results]


def last_seq(db, device: str) -> int:
    return db.execute("SELECT last_seq FROM devices WHERE id = ?", [device]).fetchone()[0]


@pytest.fixture
def device(world) -> str:
    return world.device_id


def test_a_batch_applies_in_sequence_order_whatever_order_it_came_in(db, device):
    apply = Recorder(db)
    ops = [op(3, 30), op(1, 10), op(2, 20)]

    results = push(db, device, ops, apply)

    assert statuses(results) == [(1, "applied"), (2, "applied"), (3, "applied")]
    assert apply.rows() == [(1, 10), (2, 20), (3, 30)]
    assert [r["version"] for r in results] == [1, 2, 3]
    assert last_seq(db, device) == 3
    stored = db.execute("SELECT op_id, device_seq, status FROM sync_ops ORDER BY server_seq")
    assert [tuple(r) for r in stored] == [(o.op_id, o.device_seq, "applied") for o in ops[1:]] + [
        (ops[0].op_id, 3, "applied")
    ]


def test_a_replay_answers_the_stored_result_and_applies_nothing(db, device):
    apply = Recorder(db)
    first = push(db, device, [op(1, 10, "0190f0a0-0000-7000-8000-000000000001")], apply)

    again = push(db, device, [op(1, 10, "0190f0a0-0000-7000-8000-000000000001")], apply)

    assert statuses(again) == [(1, "duplicate")]
    assert again[0]["server_seq"] == first[0]["server_seq"]
    assert again[0]["version"] == 1
    assert apply.rows() == [(1, 10)]
    assert db.execute("SELECT count(*) FROM sync_ops").fetchone()[0] == 1


def test_an_op_id_reused_for_other_content_is_a_conflict_and_the_first_is_kept(db, device):
    apply = Recorder(db)
    op_id = str(uuid.uuid4())
    push(db, device, [op(1, 10, op_id)], apply)

    answer = push(db, device, [op(1, 99, op_id)], apply)

    assert [(r["status"], r["code"]) for r in answer] == [("rejected", "conflict")]
    assert apply.rows() == [(1, 10)]
    conflict = db.execute("SELECT op_id, device_id FROM sync_replay_conflicts").fetchall()
    assert [tuple(c) for c in conflict] == [(op_id, device)]
    stored = db.execute("SELECT payload FROM sync_ops WHERE op_id = ?", [op_id]).fetchone()
    assert json.loads(stored[0]) == {"value": 10}


def test_an_operation_after_a_gap_waits_for_the_missing_one(db, device):
    apply = Recorder(db)
    late = op(3, 30)

    held = push(db, device, [late], apply)

    assert statuses(held) == [(3, "held")]
    assert apply.rows() == []
    assert last_seq(db, device) == 0
    assert db.execute("SELECT op_id FROM sync_held").fetchall() == [(late.op_id,)]
    assert engine.stale_holds(db, "2026-11-22T00:00:00.000Z")[0]["first_held"] == 3
    assert engine.stale_holds(db, "2026-11-20T00:00:00.000Z") == []

    filled = push(db, device, [op(1, 10), op(2, 20)], apply)

    assert statuses(filled) == [(1, "applied"), (2, "applied"), (3, "applied")]
    assert apply.rows() == [(1, 10), (2, 20), (3, 30)]
    assert db.execute("SELECT count(*) FROM sync_held").fetchone()[0] == 0
    assert last_seq(db, device) == 3


def test_a_held_operation_sent_again_is_held_once_and_another_for_its_seq_replaces_it(db, device):
    apply = Recorder(db)
    first = op(2, 20)
    push(db, device, [first], apply)
    push(db, device, [first], apply)
    assert db.execute("SELECT op_id FROM sync_held").fetchall() == [(first.op_id,)]

    other = op(2, 21)
    push(db, device, [other], apply)
    assert db.execute("SELECT op_id FROM sync_held").fetchall() == [(other.op_id,)]

    push(db, device, [op(1, 10)], apply)
    assert apply.rows() == [(1, 10), (2, 21)]


def test_a_rejected_operation_leaves_nothing_and_its_sequence_moves_on(db, device):
    apply = Recorder(db, refuse=(20,))

    results = push(db, device, [op(1, 10), op(2, 20), op(3, 30)], apply)

    assert statuses(results) == [(1, "applied"), (2, "rejected"), (3, "applied")]
    assert (results[1]["code"], results[1]["reason"]) == ("invalid", "value 20 refused")
    assert apply.rows() == [(1, 10), (3, 30)]  # the refused one's row was taken back
    assert last_seq(db, device) == 3
    stored = db.execute("SELECT status, reason FROM sync_ops WHERE device_seq = 2").fetchone()
    assert tuple(stored) == ("rejected", "value 20 refused")


def test_a_used_sequence_number_with_a_new_op_id_is_refused(db, device):
    apply = Recorder(db)
    push(db, device, [op(1, 10)], apply)

    results = push(db, device, [op(1, 11)], apply)

    assert [(r["status"], r["code"]) for r in results] == [("rejected", "sequence_reused")]
    assert apply.rows() == [(1, 10)]
    assert db.execute("SELECT count(*) FROM sync_ops").fetchone()[0] == 1


def test_a_failure_inside_apply_undoes_the_whole_batch(db, device):
    apply = Recorder(db, explode=(20,))

    with pytest.raises(RuntimeError):
        push(db, device, [op(1, 10), op(2, 20)], apply)

    assert apply.rows() == []
    assert db.execute("SELECT count(*) FROM sync_ops").fetchone()[0] == 0
    assert last_seq(db, device) == 0
    assert push(db, device, [op(1, 10)], Recorder(db))[0]["status"] == "applied"


def test_the_content_hash_names_every_field_an_op_id_stands_for(device):
    base = op(1, 10, "0190f0a0-0000-7000-8000-000000000001")
    same = engine.content_sha256(device, base)
    assert engine.content_sha256(device, op(1, 10, base.op_id)) == same
    changed = [
        engine.content_sha256("another-device", base),
        engine.content_sha256(device, op(2, 10, base.op_id)),
        engine.content_sha256(device, op(1, 11, base.op_id)),
        engine.content_sha256(device, Operation(*[*base.as_dict().values()][:6], 4)),
    ]
    assert same not in changed and len(set(changed)) == 4
