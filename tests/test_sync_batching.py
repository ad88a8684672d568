"""A push applied all at once (one savepoint, audit entries written together) answers and
writes exactly what it did one operation at a time: a refused operation or any failure sends
the whole push back to the one-by-one run."""

import pytest
from conftest import bearer
from test_sync import CLIENT_TIME, PUSH, measure, new_id, register

from server import audit
from server.db import Unguarded, transaction, unguarded
from sync import engine
from sync.protocol import Operation

NOW = "2026-11-21T01:00:00.000Z"


def twelve_trees(world) -> tuple[list[dict], list[str]]:
    """25 operations: twelve trees registered and measured, and a thirteenth registered."""
    tree_ids = [new_id() for _ in range(13)]
    ops = []
    for tree_id in tree_ids[:12]:
        ops.append(register(len(ops) + 1, tree_id, world.household_a))
        ops.append(measure(len(ops) + 1, tree_id, latitude=29.262, longitude=115.101))
    ops.append(register(25, tree_ids[12], world.household_a))
    return ops, tree_ids


def push(client, world, ops):
    body = {"device_id": world.device_id, "sent_at": CLIENT_TIME, "ops": ops}
    response = client.post(PUSH, json=body, headers=bearer(world.tokens["measurer"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["results"]


def audit_rows(db, after: int) -> list[tuple[str, str]]:
    rows = db.query("SELECT action, subject FROM audit_log WHERE seq > ? ORDER BY seq", [after])
    return [(r["action"], r["subject"]) for r in rows]


def head(db) -> int:
    return db.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]


def test_operation_7_of_25_refused_leaves_the_rest_applied_as_one_by_one(app, client, world, db):
    ops, tree_ids = twelve_trees(world)
    ops[6] = register(7, tree_ids[3], world.household_a, species_id="no_such_species")
    audit_before, flags_before = head(db), db["flags"].count
    trees_before = {r["id"] for r in db["trees"].rows}
    readings_before = db["measurements"].count, db["measurement_estimates"].count

    results = push(client, world, ops)

    assert [r["device_seq"] for r in results] == list(range(1, 26))
    refused = {7: "validation_failed", 8: "unknown_tree"}  # 8 measures the tree 7 never made
    assert [(r["status"], r.get("code")) for r in results] == [
        ("rejected", refused[s]) if s in refused else ("applied", None) for s in range(1, 26)
    ]
    assert "no_such_species" in results[6]["reason"]
    assert [r["version"] for r in results[:6]] == [1, 2, 1, 2, 1, 2]
    stored = {r["device_seq"]: r for r in db.query("SELECT * FROM sync_ops")}
    assert [stored[s]["status"] for s in (6, 7, 8, 9)] == [
        "applied",
        "rejected",
        "rejected",
        "applied",
    ]
    assert [r["server_seq"] for r in results] == sorted(r["server_seq"] for r in results)
    made = [t for t in tree_ids if t != tree_ids[3]]
    assert {r["id"] for r in db["trees"].rows} - trees_before == set(made)
    readings = db["measurements"].count, db["measurement_estimates"].count
    assert (readings[0] - readings_before[0], readings[1] - readings_before[1]) == (11, 11)
    # Each applied operation audited once, in the push's order; the refused ones not at all.
    expected = []
    for index, tree_id in enumerate(tree_ids[:12]):
        if index != 3:
            expected += [
                ("tree.registered", f"tree:{tree_id}"),
                ("tree.measured", f"tree:{tree_id}"),
            ]
    expected.append(("tree.registered", f"tree:{tree_ids[12]}"))
    assert audit_rows(db, audit_before) == expected
    assert audit.verify_chain(db, bytes.fromhex(app.config["AUDIT_KEY"]))["intact"]
    # Flags once per measurement (the run that was rolled back left none).
    per_measurement = list(
        db.query(
            "SELECT measurement_id, code, count(*) AS n FROM flags WHERE id > ? "
            "GROUP BY measurement_id, code",
            [flags_before],
        )
    )
    assert per_measurement
    assert {row["n"] for row in per_measurement} == {1}
    assert {row["measurement_id"] for row in per_measurement} <= {
        o["payload"]["measurement_id"] for o in ops if o["kind"] == "tree.measure"
    }


def test_a_batched_push_extends_the_audit_chain_that_verifies(app, client, world, db):
    key = bytes.fromhex(app.config["AUDIT_KEY"])
    ops, tree_ids = twelve_trees(world)
    before = head(db)

    results = push(client, world, ops)

    assert {r["status"] for r in results} == {"applied"}
    rows = list(db.query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", [before]))
    assert [r["seq"] for r in rows] == list(range(before + 1, before + 26))
    assert [r["subject"] for r in rows[:4]] == [f"tree:{tree_ids[0]}"] * 2 + [
        f"tree:{tree_ids[1]}"
    ] * 2
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    with app.app_context(), transaction(db):  # an entry after the push chains onto its last
        audit.record(db, "test.after", "push", actor="test")
    assert audit.verify_chain(db, key) == {
        "intact": True,
        "entries": before + 26,
        "head": db.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()[0],
    }


def test_an_exception_caught_inside_an_unguarded_run_still_calls_for_the_guarded_run(db):
    db.execute("CREATE TABLE scratch (n INTEGER)")
    with transaction(db):
        with pytest.raises(Unguarded), unguarded(db):
            try:
                with transaction(db):
                    db.execute("INSERT INTO scratch VALUES (1)")
                    raise ValueError("caught below")
            except ValueError:
                pass
        db.execute("INSERT INTO scratch VALUES (2)")  # the transaction itself goes on
    assert db.execute("SELECT n FROM scratch").fetchall() == [(1,), (2,)]  # 1: caller undoes


# --- the engine alone: all at once against one by one --------------------------------------


class Writer:
    """An `apply` writing a row per operation inside nested transactions; it refuses, fails,
    or swallows a failure of a nested change, for the values it is told."""

    def __init__(self, db, refuse=(), explode=(), swallow=()):
        self.db, self.refuse, self.explode, self.swallow = db, refuse, explode, swallow
        db.execute("CREATE TABLE IF NOT EXISTS written (seq INTEGER, value INTEGER)")

    def __call__(self, operation: Operation) -> dict:
        value = operation.payload["value"]
        with transaction(self.db):
            self.db.execute("INSERT INTO written VALUES (?, ?)", [operation.device_seq, value])
        if value in self.swallow:
            try:
                with transaction(self.db):
                    self.db.execute("INSERT INTO written VALUES (?, -1)", [operation.device_seq])
                    raise LookupError("a nested change that fails and is let go")
            except LookupError:
                pass
        if value in self.explode:
            raise RuntimeError("a bug in apply")
        if value in self.refuse:
            raise engine.OperationRejected("invalid", f"value {value} refused")
        return {"version": value}


def op(seq: int, value: int, op_id: str | None = None) -> Operation:
    return Operation(op_id or new_id(), seq, f"r{seq}", "tree.measure", {"value": value}, NOW, None)


def run(db, device: str, ops: list[Operation], all_at_once: bool, **writer):
    """The push's results and rows, then everything undone for the next run."""
    db.execute("CREATE TABLE IF NOT EXISTS written (seq INTEGER, value INTEGER)")
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        optimistic = (lambda: unguarded(db)) if all_at_once else None
        results = engine.push(db, device, ops, Writer(db, **writer), NOW, optimistic=optimistic)
        tables = ("written", "sync_ops", "sync_held", "sync_replay_conflicts", "devices")
        rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}  # noqa: S608
        return results, rows
    finally:
        db.conn.execute("ROLLBACK")


SCENARIOS = {
    "all_good": ([op(n, n) for n in range(1, 26)], {}),
    "seventh_refused": ([op(n, n) for n in range(1, 26)], {"refuse": (7,)}),
    "first_and_last_refused": ([op(n, n) for n in range(1, 26)], {"refuse": (1, 25)}),
    "nested_failure_let_go": ([op(n, n) for n in range(1, 9)], {"swallow": (3,)}),
    "a_gap_holds_the_rest": ([op(1, 1), op(2, 2), op(4, 4), op(5, 5)], {}),
    "refused_behind_a_gap": ([op(1, 1), op(3, 3), op(4, 4)], {"refuse": (4,)}),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_all_at_once_answers_and_writes_what_one_by_one_does(db, world, name):
    ops, writer = SCENARIOS[name]

    one_by_one = run(db, world.device_id, ops, False, **writer)
    all_at_once = run(db, world.device_id, ops, True, **writer)

    assert all_at_once == one_by_one


def test_a_held_operation_applied_later_all_at_once_is_as_one_by_one(db, world):
    first = [op(1, 1), op(3, 3), op(4, 4)]
    with transaction(db):
        engine.push(db, world.device_id, first, Writer(db), NOW)

    filling = [op(2, 2)]
    assert run(db, world.device_id, filling, True) == run(db, world.device_id, filling, False)


def test_a_failure_all_at_once_is_the_failure_one_by_one(db, world):
    ops = [op(n, n) for n in range(1, 6)]
    writer = Writer(db, explode=(3,))
    with pytest.raises(RuntimeError, match="a bug in apply"), transaction(db):
        try:
            engine.push(db, world.device_id, ops, writer, NOW, lambda: unguarded(db))
        finally:  # what the one-by-one run left before it failed: nothing of the other
            assert db.execute("SELECT * FROM written").fetchall() == [(1, 1), (2, 2)]
    assert db.execute("SELECT count(*) FROM written").fetchone()[0] == 0
