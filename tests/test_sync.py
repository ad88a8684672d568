"""Sync over weak networks: idempotent ordered push, cursor pull, resumable photo uploads,
live news of applied batches, and the Python reference client against the real app."""

import gzip
import hashlib
import json
import random
import socket
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser import serving
from conftest import BANK, ID_NUMBER, PHONE, bearer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_push import Browser

from server import devices, households, trees, users, villages
from server.clock import iso, now
from server.db import get_db, transaction
from server.extensions import socketio
from sync.client import SyncClient, SyncScheduler, TransientError

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"
SPECIES = "cunninghamia_lanceolata"
CLIENT_TIME = "2025-06-01T08:00:00.000Z"
# Everything a push or a bad request could touch.
TABLES = (
    "households",
    "trees",
    "measurements",
    "measurement_estimates",
    "flags",
    "audit_log",
    "sync_ops",
    "sync_held",
    "blobs",
    "change_log",
)


def new_id() -> str:
    return str(uuid.uuid4())


def op(
    seq: int,
    kind: str,
    record_id: str,
    payload: dict[str, Any],
    *,
    op_id: str | None = None,
    base_version: int | None = None,
) -> dict[str, Any]:
    return {
        "op_id": op_id or new_id(),
        "device_seq": seq,
        "record_id": record_id,
        "kind": kind,
        "payload": payload,
        "client_time": CLIENT_TIME,
        "base_version": base_version,
    }


def register(seq: int, tree_id: str, household: str, **payload: Any) -> dict[str, Any]:
    body = {"household_code": household, "species_id": SPECIES, "position": "house"}
    return op(seq, "tree.register", tree_id, body | payload)


def measure(
    seq: int, tree_id: str, measurement_id: str | None = None, **payload: Any
) -> dict[str, Any]:
    base = payload.pop("base", None)
    body = {"measurement_id": measurement_id or new_id(), "stems_mm": [120], "height_cm": 900}
    return op(seq, "tree.measure", tree_id, body | payload, base_version=base)


def status_op(seq: int, tree_id: str, value: str) -> dict[str, Any]:
    return op(seq, "tree.status", tree_id, {"status": value})


def batch(world, ops: list[dict[str, Any]], sent_at: str | None = None) -> dict[str, Any]:
    return {"device_id": world.device_id, "sent_at": sent_at, "ops": ops}


def push(client, world, ops: list[dict[str, Any]], sent_at: str | None = None):
    return client.post(
        PUSH, json=batch(world, ops, sent_at), headers=bearer(world.tokens["measurer"])
    )


def outcomes(response) -> list[tuple[int, str]]:
    return [(r["device_seq"], r["status"]) for r in response.get_json()["results"]]


def counts(db) -> dict[str, int]:
    return {table: db[table].count for table in TABLES}


def last_seq(db, world) -> int:
    return db["devices"].get(world.device_id)["last_seq"]


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """The one error shape: {"error": {"status", "code", "message"[, "details"]}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) <= {"status", "code", "message", "details"}
    assert (error["status"], error["code"]) == (status, code)
    assert error["message"]
    return error


@pytest.fixture
def household_b(app, world) -> str:
    """A household of village B: same county as the measurer's village A, another village."""
    with app.app_context():
        village = villages.get_village(world.village_b)
        return households.create_household(get_db(), village, head_name="王五")["code"]


# --- push ---------------------------------------------------------------------------------


def test_a_registered_and_measured_tree_is_applied(client, world, db):
    tree_id, measurement_id = new_id(), new_id()
    ops = [register(1, tree_id, world.household_a), measure(2, tree_id, measurement_id)]

    response = push(client, world, ops)

    assert response.status_code == 200
    body = response.get_json()
    assert outcomes(response) == [(1, "applied"), (2, "applied")]
    assert [r["op_id"] for r in body["results"]] == [o["op_id"] for o in ops]
    assert body["results"][0]["version"] == 1
    assert body["results"][1]["version"] == 2
    assert body["last_seq"] == 2
    tree = db["trees"].get(tree_id)
    assert (tree["species_id"], tree["position"], tree["version"]) == (SPECIES, "house", 2)
    assert tree["device_id"] == world.device_id
    measurement = db["measurements"].get(measurement_id)
    assert (measurement["tree_id"], measurement["dbh_mm"], measurement["height_cm"]) == (
        tree_id,
        120,
        900,
    )
    assert measurement["client_time"] == CLIENT_TIME
    assert db["measurement_estimates"].get(measurement_id)["co2e_g"] > 0
    rows = list(db.query("SELECT * FROM sync_ops ORDER BY server_seq"))
    assert [(r["op_id"], r["device_seq"], r["status"]) for r in rows] == [
        (ops[0]["op_id"], 1, "applied"),
        (ops[1]["op_id"], 2, "applied"),
    ]
    assert {r["device_id"] for r in rows} == {world.device_id}
    assert [r["server_seq"] for r in body["results"]] == [r["server_seq"] for r in rows]
    assert last_seq(db, world) == 2


def test_replaying_a_batch_answers_duplicate_with_the_stored_result(client, world, db):
    tree_id = new_id()
    ops = [register(1, tree_id, world.household_a), measure(2, tree_id)]
    first = push(client, world, ops).get_json()["results"]
    before = counts(db)

    response = push(client, world, ops)

    assert response.status_code == 200
    again = response.get_json()["results"]
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert [{k: v for k, v in r.items() if k != "status"} for r in again] == [
        {k: v for k, v in r.items() if k != "status"} for r in first
    ]
    assert counts(db) == before
    assert db["trees"].get(tree_id)["version"] == 2


def test_a_gzipped_batch_is_applied(client, world, db):
    tree_id = new_id()
    body = gzip.compress(
        json.dumps(batch(world, [register(1, tree_id, world.household_a)])).encode()
    )

    response = client.post(
        PUSH,
        data=body,
        headers={
            **bearer(world.tokens["measurer"]),
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )

    assert response.status_code == 200
    assert outcomes(response) == [(1, "applied")]
    assert db["trees"].get(tree_id)["household_id"] is not None


def test_an_operation_after_a_gap_is_held_until_the_missing_one_arrives(client, world, db):
    tree_id = new_id()
    first = register(1, tree_id, world.household_a)
    second = measure(2, tree_id, height_cm=900)
    third = measure(3, tree_id, height_cm=950)
    assert outcomes(push(client, world, [first])) == [(1, "applied")]

    response = push(client, world, [third])

    assert outcomes(response) == [(3, "held")]
    assert "device_seq 2" in response.get_json()["results"][0]["reason"]
    assert [r["op_id"] for r in db["sync_held"].rows] == [third["op_id"]]
    assert db["measurements"].count_where("tree_id = ?", [tree_id]) == 0
    assert last_seq(db, world) == 1

    replay = push(client, world, [third])

    assert outcomes(replay) == [(3, "held")]
    assert db["sync_held"].count == 1

    response = push(client, world, [second])

    assert response.status_code == 200
    assert outcomes(response) == [(2, "applied"), (3, "applied")]
    assert [r["op_id"] for r in response.get_json()["results"]] == [
        second["op_id"],
        third["op_id"],
    ]
    rows = list(db.query("SELECT op_id, device_seq FROM sync_ops ORDER BY server_seq"))
    assert rows == [
        {"op_id": first["op_id"], "device_seq": 1},
        {"op_id": second["op_id"], "device_seq": 2},
        {"op_id": third["op_id"], "device_seq": 3},
    ]
    assert db["sync_held"].count == 0
    assert last_seq(db, world) == 3
    assert db["trees"].get(tree_id)["version"] == 3
    assert [r["version"] for r in response.get_json()["results"]] == [2, 3]
    for measured, height in ((second, 900), (third, 950)):
        row = db["measurements"].get(measured["payload"]["measurement_id"])
        assert (row["tree_id"], row["height_cm"]) == (tree_id, height)


def test_a_batch_filling_a_gap_and_resending_the_held_op_answers_once_per_operation(
    client, world, db
):
    tree_id = new_id()
    first, second, third = (
        register(1, tree_id, world.household_a),
        measure(2, tree_id),
        measure(3, tree_id),
    )
    push(client, world, [first])
    assert outcomes(push(client, world, [third])) == [(3, "held")]

    response = push(client, world, [second, third])  # what a client does: resend all waiting

    assert response.status_code == 200
    assert outcomes(response) == [(2, "applied"), (3, "applied")]
    assert db["sync_ops"].count == 3
    assert db["sync_held"].count == 0


def test_a_new_operation_reusing_a_used_sequence_is_rejected_and_not_stored(client, world, db):
    tree_id = new_id()
    push(client, world, [register(1, tree_id, world.household_a)])
    before = counts(db)
    reused = measure(1, tree_id)

    response = push(client, world, [reused])

    assert response.status_code == 200
    [result] = response.get_json()["results"]
    assert (result["op_id"], result["status"], result["code"]) == (
        reused["op_id"],
        "rejected",
        "sequence_reused",
    )
    assert counts(db) == before
    assert db["sync_ops"].count_where("op_id = ?", [reused["op_id"]]) == 0
    assert last_seq(db, world) == 1


# Each bad operation is sent between a good registration (seq 1) and a good measurement
# (seq 3) of tree T; (name, builder, expected rejection code).
BAD_OPERATIONS = [
    (
        "unknown_household",
        lambda world, t, hb: register(2, new_id(), world.household_a[:13] + "9998-A"),
        "unknown_household",
    ),
    (
        "household_of_another_county",
        lambda world, t, hb: register(2, new_id(), world.household_c),
        "out_of_scope",
    ),
    (
        "household_of_another_village",
        lambda world, t, hb: register(2, new_id(), hb),
        "out_of_scope",
    ),
    (
        "unknown_species",
        lambda world, t, hb: register(2, new_id(), world.household_a, species_id="musa_spp"),
        "validation_failed",
    ),
    (
        "unknown_position",
        lambda world, t, hb: register(2, new_id(), world.household_a, position="roof"),
        "validation_failed",
    ),
    (
        "tree_id_not_a_uuid",
        lambda world, t, hb: register(2, "tree-number-one", world.household_a),
        "validation_failed",
    ),
    (
        "tree_id_already_used",
        lambda world, t, hb: register(2, world.tree_a, world.household_a),
        "duplicate_tree",
    ),
    (
        "tree_id_registered_earlier_in_the_batch",
        lambda world, t, hb: register(2, t, world.household_a),
        "duplicate_tree",
    ),
    ("measurement_of_unknown_tree", lambda world, t, hb: measure(2, new_id()), "unknown_tree"),
    (
        "measurement_without_stems",
        lambda world, t, hb: measure(2, t, stems_mm=["thick"]),
        "invalid",
    ),
    (
        "measurement_with_zone_less_time",
        lambda world, t, hb: {**measure(2, t), "client_time": "2025-06-01T08:00:00"},
        "validation_failed",
    ),
    ("status_burnt", lambda world, t, hb: status_op(2, t, "burnt"), "validation_failed"),
    ("status_of_unknown_tree", lambda world, t, hb: status_op(2, new_id(), "dead"), "unknown_tree"),
    # Values the database's own checks refuse: still one rejected operation, not a failed batch.
    (
        "planting_year_1500",
        lambda world, t, hb: register(2, new_id(), world.household_a, planting_year=1500),
        "invalid",
    ),
    (
        "height_5_cm",  # no DBH below breast height (1.3 m)
        lambda world, t, hb: measure(2, t, height_cm=5),
        "validation_failed",
    ),
    (
        "latitude_95",
        lambda world, t, hb: measure(2, t, latitude=95.0, longitude=115.1),
        "invalid",
    ),
    (
        "photo_sha256_not_a_hash",
        lambda world, t, hb: measure(2, t, photo_sha256="abc"),
        "invalid",
    ),
    (
        "diameter_beyond_sqlite_integers",
        lambda world, t, hb: measure(2, t, stems_mm=[10**30]),
        "invalid",
    ),
    (
        "measurement_id_already_used",
        lambda world, t, hb: measure(2, t, "0190f0a0-0000-7000-8000-0000000000b1"),
        "conflict",
    ),
]


@pytest.mark.parametrize(
    ("make_bad", "code"),
    [(make, code) for _, make, code in BAD_OPERATIONS],
    ids=[name for name, _, _ in BAD_OPERATIONS],
)
def test_a_bad_operation_is_rejected_alone_and_leaves_nothing_behind(
    client, world, db, household_b, make_bad, code
):
    tree_id, measurement_id = new_id(), new_id()
    bad = make_bad(world, tree_id, household_b)
    before = counts(db)
    audit_before = db["audit_log"].count
    flags_before = db["flags"].count

    response = push(
        client,
        world,
        [register(1, tree_id, world.household_a), bad, measure(3, tree_id, measurement_id)],
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert [(r["device_seq"], r["status"]) for r in results] == [
        (1, "applied"),
        (2, "rejected"),
        (3, "applied"),
    ]
    assert results[1]["code"] == code
    assert results[1]["reason"]
    stored = db["sync_ops"].get(results[1]["server_seq"])
    assert (stored["op_id"], stored["status"]) == (bad["op_id"], "rejected")
    assert stored["reason"] == results[1]["reason"]
    assert last_seq(db, world) == 3
    # Exactly what the two good operations make, and nothing of the bad one.
    after = counts(db)
    assert after["households"] == before["households"]
    assert after["trees"] == before["trees"] + 1
    assert after["measurements"] == before["measurements"] + 1
    assert after["measurement_estimates"] == before["measurement_estimates"] + 1
    assert after["sync_ops"] == before["sync_ops"] + 3
    assert (after["sync_held"], after["blobs"]) == (0, 0)
    assert db["trees"].get(tree_id)["version"] == 2
    assert db["measurements"].get(measurement_id)["tree_id"] == tree_id
    new_flags = list(db.query("SELECT * FROM flags WHERE id > ?", [flags_before]))
    assert {f["measurement_id"] for f in new_flags} <= {measurement_id}
    actions = [
        (row["action"], row["subject"])
        for row in db.query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", [audit_before])
    ]
    assert actions == [("tree.registered", f"tree:{tree_id}"), ("tree.measured", f"tree:{tree_id}")]


def test_a_stale_edit_is_applied_and_flagged_for_review(client, world, db):
    tree_id, fresh, stale = new_id(), new_id(), new_id()
    push(client, world, [register(1, tree_id, world.household_a)])
    push(client, world, [measure(2, tree_id, fresh, base=1, height_cm=900)])
    assert db["trees"].get(tree_id)["version"] == 2
    assert db["flags"].count_where("code = 'stale_edit'") == 0

    response = push(client, world, [measure(3, tree_id, stale, base=1, height_cm=910)])

    assert outcomes(response) == [(3, "applied")]
    assert db["measurements"].get(stale)["height_cm"] == 910
    flags = list(db["flags"].rows_where("code = 'stale_edit'"))
    assert [(f["measurement_id"], f["tree_id"], f["decision"]) for f in flags] == [
        (stale, tree_id, None)
    ]
    assert flags[0]["reason"] == (
        "这条记录是在这棵树的第 1 版上修改的，服务器上已是第 2 版：请对照两者复核。"
    )
    assert db["trees"].get(tree_id)["version"] == 3


def test_a_stale_status_change_is_applied_and_flagged(client, world, db):
    tree_id, measurement_id = new_id(), new_id()
    push(
        client,
        world,
        [register(1, tree_id, world.household_a), measure(2, tree_id, measurement_id)],
    )
    dead = {**status_op(3, tree_id, "dead"), "base_version": 1}

    response = push(client, world, [dead])

    assert outcomes(response) == [(3, "applied")]
    assert db["trees"].get(tree_id)["status"] == "dead"
    assert [f["measurement_id"] for f in db["flags"].rows_where("code = 'stale_edit'")] == [
        measurement_id
    ]


def test_a_stale_status_change_tells_the_measurers_phone(client, world, db):
    browser = Browser("https://push.example.net/send/" + uuid.uuid4().hex)
    made = client.post(
        "/api/v1/push/subscriptions",
        json={"subscription": browser.subscription(), "kinds": ["record_flagged"]},
        headers=bearer(world.tokens["measurer"]),
    )
    assert made.status_code == 201, made.json
    tree_id, measurement_id = new_id(), new_id()
    push(
        client,
        world,
        [register(1, tree_id, world.household_a), measure(2, tree_id, measurement_id)],
    )
    before = db["push_messages"].count

    push(client, world, [{**status_op(3, tree_id, "dead"), "base_version": 1}])

    queued = list(db.query("SELECT * FROM push_messages WHERE id > ?", [before]))
    assert [m["kind"] for m in queued] == ["record_flagged"]
    assert "需要复核" in json.loads(queued[0]["payload"])["body"]


def test_a_phone_clock_ten_minutes_off_flags_its_measurements(client, world, db):
    tree_id, skewed, on_time = new_id(), new_id(), new_id()
    ahead = iso(now() + timedelta(minutes=10))

    response = push(
        client, world, [register(1, tree_id, world.household_a), measure(2, tree_id, skewed)], ahead
    )

    assert outcomes(response) == [(1, "applied"), (2, "applied")]
    body = response.get_json()
    assert 540 < body["clock_offset_s"] < 660
    assert "clock_skew" in body["results"][1]["flags"]
    assert [f["measurement_id"] for f in db["flags"].rows_where("code = 'clock_skew'")] == [skewed]

    response = push(client, world, [measure(3, tree_id, on_time)], iso(now()))

    assert abs(response.get_json()["clock_offset_s"]) < 60
    assert "clock_skew" not in response.get_json()["results"][0]["flags"]
    assert db["flags"].count_where("code = 'clock_skew' AND measurement_id = ?", [on_time]) == 0


# --- bad batches --------------------------------------------------------------------------


def _good(world) -> dict[str, Any]:
    return batch(world, [register(1, new_id(), world.household_a)])


def _json(body: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def _gzipped(raw: bytes) -> tuple[bytes, dict[str, str]]:
    return raw, {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def _with_op(world, **change: Any) -> dict[str, Any]:
    body = _good(world)
    body["ops"][0] |= change
    return body


def _twice(world, field: str) -> dict[str, Any]:
    """Two operations sharing `field` (each else distinct)."""
    first, second = measure(1, world.tree_a), measure(2, world.tree_a)
    second[field] = first[field]
    return batch(world, [first, second])


def _corrupt_gzip(world) -> bytes:
    raw = gzip.compress(json.dumps(_good(world)).encode())
    return raw[:10] + b"\xff" * 40 + raw[50:]


BAD_BATCHES = {
    "malformed_json": (lambda w: (b'{"device_id": "x", "ops": [', {}), 400, "invalid_json"),
    "deeply_nested_json": (lambda w: (b"[" * 200_000, {}), 400, "invalid_json"),
    "not_utf8": (lambda w: (b'{"device_id": "\xff\xfe"}', {}), 400, "invalid_json"),
    "not_gzip": (lambda w: _gzipped(b"this is not gzip at all"), 400, "invalid_gzip"),
    "corrupt_gzip": (lambda w: _gzipped(_corrupt_gzip(w)), 400, "invalid_gzip"),
    "truncated_gzip": (
        lambda w: _gzipped(gzip.compress(json.dumps(_good(w)).encode())[:-12]),
        400,
        "invalid_gzip",
    ),
    "gzip_bomb": (
        lambda w: _gzipped(gzip.compress(b" " * (5 * 1024 * 1024), compresslevel=9)),
        413,
        "payload_too_large",
    ),
    "body_over_the_limit": (lambda w: (b" " * (1024 * 1024 + 1), {}), 413, "payload_too_large"),
    "not_an_object": (lambda w: _json([_good(w)]), 422, "invalid_batch"),
    "empty_ops": (lambda w: _json(batch(w, [])), 422, "invalid_batch"),
    "ops_not_a_list": (lambda w: _json(_good(w) | {"ops": {"0": 1}}), 422, "invalid_batch"),
    "101_ops": (
        lambda w: _json(batch(w, [measure(i, w.tree_a) for i in range(1, 102)])),
        422,
        "invalid_batch",
    ),
    "op_not_an_object": (lambda w: _json(batch(w, ["tree.register"])), 422, "invalid_batch"),
    "op_id_not_a_uuid": (lambda w: _json(_with_op(w, op_id="op-1")), 422, "invalid_batch"),
    "device_seq_0": (lambda w: _json(_with_op(w, device_seq=0)), 422, "invalid_batch"),
    "device_seq_text": (lambda w: _json(_with_op(w, device_seq="1")), 422, "invalid_batch"),
    "device_seq_true": (lambda w: _json(_with_op(w, device_seq=True)), 422, "invalid_batch"),
    "device_seq_float": (lambda w: _json(_with_op(w, device_seq=1.0)), 422, "invalid_batch"),
    "unknown_kind": (lambda w: _json(_with_op(w, kind="tree.delete")), 422, "invalid_batch"),
    "payload_not_an_object": (lambda w: _json(_with_op(w, payload=[])), 422, "invalid_batch"),
    "missing_client_time": (
        lambda w: _json(
            _good(w)
            | {"ops": [{k: v for k, v in _good(w)["ops"][0].items() if k != "client_time"}]}
        ),
        422,
        "invalid_batch",
    ),
    "record_id_too_long": (lambda w: _json(_with_op(w, record_id="x" * 41)), 422, "invalid_batch"),
    "negative_base_version": (lambda w: _json(_with_op(w, base_version=-1)), 422, "invalid_batch"),
    "extra_field": (lambda w: _json(_with_op(w, priority="high")), 422, "invalid_batch"),
    "device_id_missing": (
        lambda w: _json({"ops": _good(w)["ops"]}),
        422,
        "invalid_batch",
    ),
    "sent_at_a_number": (lambda w: _json(_good(w) | {"sent_at": 1}), 422, "invalid_batch"),
    "op_id_twice": (lambda w: _json(_twice(w, "op_id")), 422, "invalid_batch"),
    "device_seq_twice": (lambda w: _json(_twice(w, "device_seq")), 422, "invalid_batch"),
    "another_device": (
        lambda w: _json(_good(w) | {"device_id": new_id()}),
        403,
        "wrong_device",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_bad_batch_gets_a_4xx_and_applies_nothing(client, world, db, case):
    make, status, code = BAD_BATCHES[case]
    data, headers = make(world)
    before, seq_before = counts(db), last_seq(db, world)

    response = client.post(PUSH, data=data, headers={**bearer(world.tokens["measurer"]), **headers})

    error = assert_error(response, status, code)
    if code == "invalid_batch":
        assert error["details"] and all({"field", "problem"} <= set(p) for p in error["details"])
    assert counts(db) == before
    assert last_seq(db, world) == seq_before


def test_a_deeply_nested_body_cannot_crash_the_server(app, world):
    """py_ecc (imported with web3 by the chain health check) raises the recursion limit to
    100,000; json's C parser then overflows the C stack on deep nesting instead of raising
    RecursionError. Run in a child process, so a crash fails this test only."""
    script = textwrap.dedent(
        """
        import sys
        sys.setrecursionlimit(1_000_000)
        from server import create_app
        client = create_app({"INSTANCE_PATH": sys.argv[1]}).test_client()
        for body in (b"[" * 1_000_000, b'{"a":' * 200_000):
            response = client.post(
                "/api/v1/sync/push", data=body, headers={"Authorization": "Bearer " + sys.argv[2]}
            )
            print(response.status_code, response.get_json()["error"]["code"])
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script, app.config["INSTANCE_PATH"], world.tokens["measurer"]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent.parent,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == ["400 invalid_json", "400 invalid_json"]


def test_batch_problems_name_every_bad_field(client, world):
    bad = {**measure(0, world.tree_a), "op_id": "nope", "kind": "tree.delete", "colour": "red"}

    response = client.post(PUSH, json=batch(world, [bad]), headers=bearer(world.tokens["measurer"]))

    error = assert_error(response, 422, "invalid_batch")
    assert sorted(p["field"] for p in error["details"]) == [
        "ops/0/colour",
        "ops/0/device_seq",
        "ops/0/kind",
        "ops/0/op_id",
    ]


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("forged", 401, "invalid_token"),
        ("bureau", 403, "forbidden"),
        ("admin", 403, "forbidden"),
        ("revoked", 401, "invalid_token"),
    ],
)
def test_push_needs_the_live_token_of_a_measurer_device(client, world, db, who, status, code):
    if who == "revoked":
        response = client.post(
            f"/api/v1/devices/{world.device_id}/revoke", headers=bearer(world.tokens["admin"])
        )
        assert response.status_code == 200
    headers = {
        None: {},
        "forged": bearer("sp_" + "A" * 40),
        "bureau": bearer(world.tokens["bureau"]),
        "admin": bearer(world.tokens["admin"]),
        "revoked": bearer(world.tokens["measurer"]),
    }[who]
    before = counts(db)

    response = client.post(PUSH, json=_good(world), headers=headers)

    assert_error(response, status, code)
    assert counts(db) == before
    assert last_seq(db, world) == 0


def test_a_measurer_signed_in_without_a_device_cannot_push(app, client, world, db):
    with app.app_context():
        token = users.issue_token(get_db(), world.measurer_id, "laptop")

    response = client.post(PUSH, json=_good(world), headers=bearer(token))

    assert_error(response, 403, "device_required")
    assert db["sync_ops"].count == 0


# --- pull ---------------------------------------------------------------------------------


def pull(client, world, cursor: Any = 0, **headers: str):
    return client.get(
        f"{PULL}?cursor={cursor}", headers={**bearer(world.tokens["measurer"]), **headers}
    )


def pull_all(client, world, cursor: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Every page from `cursor` on; returns the pages and the final cursor."""
    pages = []
    while True:
        response = pull(client, world, cursor)
        assert response.status_code == 200
        page = response.get_json()
        pages.append(page)
        assert page["cursor"] >= cursor
        cursor = page["cursor"]
        if not page["more"]:
            return pages, cursor


def test_first_pull_returns_the_roster_without_private_fields_and_the_trees(client, world, db):
    response = pull(client, world)

    assert response.status_code == 200
    page = response.get_json()
    assert page["more"] is False
    assert page["cursor"] == db.execute("SELECT max(seq) FROM change_log").fetchone()[0]
    assert page["households"] == [
        {
            "code": world.household_a,
            "seq": 1,
            "status": "active",
            "head_name": "张*丰",  # masked: the phone never holds the full name or a phone
            "door_number": None,
        }
    ]
    assert page["village"]["name"] == "长水村"
    assert "assignments" not in page  # verifier samples come from /verifier/assignments
    assert set(page["method"]) == {"version", "sha256"}
    [tree] = page["trees"]
    assert tree["id"] == world.tree_a
    assert (tree["household"], tree["species_id"], tree["position"], tree["status"]) == (
        world.household_a,
        SPECIES,
        "house",
        "alive",
    )
    assert (tree["measurement_id"], tree["dbh_mm"], tree["height_cm"]) == (
        "0190f0a0-0000-7000-8000-0000000000b2",
        110,
        1300,
    )
    assert tree["co2e_g"] == db["measurement_estimates"].get(tree["measurement_id"])["co2e_g"]
    assert tree["awaiting_photo"] is True  # the seeded measurement's photo never arrived
    open_flags = {
        f["id"] for f in db["flags"].rows_where("tree_id = ? AND decision IS NULL", [world.tree_a])
    }
    assert {f["id"] for f in tree["open_flags"]} == open_flags
    assert world.flag_id in open_flags
    assert {"photo_sha256", "photo_received"}.isdisjoint(tree)
    raw = response.get_data()
    [household] = db["households"].rows_where("code = ?", [world.household_a])
    for secret in ("张三丰", PHONE, ID_NUMBER, BANK, household["phone_masked"]):
        assert secret.encode() not in raw
        assert json.dumps(secret).encode() not in raw  # nor \u-escaped
    assert b"_enc" not in raw and b"_masked" not in raw  # the masked name goes as head_name


def test_pull_pages_until_every_change_is_delivered(app, client, world, db):
    with app.app_context():
        database = get_db()
        village = villages.get_village(world.village_a)
        with transaction(database):
            for i in range(360):
                household = households.create_household(database, village, head_name=f"户主{i}")
                if i % 2 == 0:
                    trees.register_tree(
                        database,
                        household,
                        tree_id=new_id(),
                        species_id=SPECIES,
                        position="road",
                    )
    assert db["change_log"].count_where("village_id = 1") > 500

    pages, cursor = pull_all(client, world)

    assert len(pages) >= 2
    assert [page["more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    cursors = [page["cursor"] for page in pages]
    assert cursors == sorted(set(cursors))
    codes_seen = {h["code"] for page in pages for h in page["households"]}
    trees_seen = {t["id"] for page in pages for t in page["trees"]}
    assert codes_seen == {
        row["code"] for row in db.query("SELECT code FROM households WHERE village_id = 1")
    }
    assert len(codes_seen) == 361
    assert trees_seen == {
        row["id"]
        for row in db.query(
            "SELECT t.id FROM trees t JOIN households h ON h.id = t.household_id "
            "WHERE h.village_id = 1"
        )
    }
    assert len(trees_seen) == 181
    assert all(len(page["households"]) + len(page["trees"]) <= 500 for page in pages)
    assert (
        cursor == db.execute("SELECT max(seq) FROM change_log WHERE village_id = 1").fetchone()[0]
    )
    # Nothing new: the same cursor, nothing more.
    again = pull(client, world, cursor).get_json()
    assert (again["cursor"], again["more"], again["households"], again["trees"]) == (
        cursor,
        False,
        [],
        [],
    )


def test_pull_follows_the_cursor_to_new_changes(client, world):
    cursor = pull(client, world).get_json()["cursor"]
    tree_id = new_id()
    push(client, world, [register(1, tree_id, world.household_a), measure(2, tree_id)])

    page = pull(client, world, cursor).get_json()

    assert page["cursor"] > cursor
    assert page["households"] == []
    assert [t["id"] for t in page["trees"]] == [tree_id]
    assert page["trees"][0]["version"] == 2
    assert page["trees"][0]["awaiting_photo"] is False
    assert page["last_seq"] == 2


def test_pull_never_returns_other_villages(app, client, world, db, household_b):
    with app.app_context():
        database = get_db()
        for code in (household_b, world.household_c):
            trees.register_tree(
                database,
                households.get_household(code),
                tree_id=new_id(),
                species_id=SPECIES,
                position="water",
            )
    others = {
        row["id"]
        for row in db.query(
            "SELECT t.id FROM trees t JOIN households h ON h.id = t.household_id "
            "WHERE h.village_id != 1"
        )
    }
    assert len(others) == 2

    pages, _ = pull_all(client, world)

    raw = json.dumps(pages)
    assert household_b not in raw and world.household_c not in raw
    assert not others & {t["id"] for page in pages for t in page["trees"]}
    assert {h["code"] for page in pages for h in page["households"]} == {world.household_a}


def test_pull_is_gzipped_when_the_phone_accepts_it(client, world):
    plain = pull(client, world)

    response = pull(client, world, **{"Accept-Encoding": "gzip"})

    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    zipped = json.loads(gzip.decompress(response.get_data()))
    unzipped = plain.get_json()
    assert len(response.get_data()) < len(plain.get_data())
    assert {k: v for k, v in zipped.items() if k != "server_time"} == {
        k: v for k, v in unzipped.items() if k != "server_time"
    }
    assert "Content-Encoding" not in plain.headers


@pytest.mark.parametrize("cursor", ["abc", "1.5", "", "0x10", "99999999999999999999999", "-1"])
def test_a_bad_cursor_is_refused(client, world, cursor):
    assert_error(pull(client, world, cursor), 422, "validation_failed")


@pytest.mark.parametrize(
    ("who", "status"), [(None, 401), ("bureau", 403), ("admin", 403), ("forged", 401)]
)
def test_pull_is_for_measurer_devices_only(client, world, who, status):
    headers = {} if who is None else bearer(world.tokens.get(who, "sp_forged"))

    response = client.get(f"{PULL}?cursor=0", headers=headers)

    assert response.status_code == status
    assert b"households" not in response.get_data()


# --- blobs --------------------------------------------------------------------------------


PHOTO = random.Random(20260301).randbytes(100_000)
PHOTO_SHA = hashlib.sha256(PHOTO).hexdigest()


def head_blob(client, world, sha: str = PHOTO_SHA):
    return client.head(f"/api/v1/blobs/{sha}", headers=bearer(world.tokens["measurer"]))


def put_chunk(client, world, offset: int, chunk: bytes, *, length: int = len(PHOTO), sha=PHOTO_SHA):
    return client.put(
        f"/api/v1/blobs/{sha}",
        data=chunk,
        headers={
            **bearer(world.tokens["measurer"]),
            "Upload-Offset": str(offset),
            "Upload-Length": str(length),
            "Content-Type": "application/octet-stream",
        },
    )


def blob_files(app) -> list[Path]:
    return sorted(
        p for p in (Path(app.config["INSTANCE_PATH"]) / "blobs").rglob("*") if p.is_file()
    )


def upload(client, world, data: bytes = PHOTO, size: int = 30_000):
    sha = hashlib.sha256(data).hexdigest()
    for offset in range(0, len(data), size):
        response = put_chunk(
            client, world, offset, data[offset : offset + size], length=len(data), sha=sha
        )
        assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_head_of_an_unknown_blob_says_nothing_is_held(client, world):
    response = head_blob(client, world)

    assert response.status_code == 200
    assert (response.headers["Upload-Offset"], response.headers["Upload-Complete"]) == (
        "0",
        "false",
    )


def test_a_photo_uploaded_in_chunks_is_stored_once_under_its_hash(app, client, world, db):
    final = Path(app.config["INSTANCE_PATH"]) / "blobs" / PHOTO_SHA[:2] / PHOTO_SHA

    first = put_chunk(client, world, 0, PHOTO[:40_000])

    assert first.status_code == 200
    assert first.get_json() == {"complete": False, "offset": 40_000}
    head = head_blob(client, world)
    assert (head.headers["Upload-Offset"], head.headers["Upload-Complete"]) == ("40000", "false")
    assert put_chunk(client, world, 40_000, PHOTO[40_000:80_000]).get_json() == {
        "complete": False,
        "offset": 80_000,
    }

    last = put_chunk(client, world, 80_000, PHOTO[80_000:])

    assert last.get_json() == {"complete": True, "offset": len(PHOTO)}
    assert final.read_bytes() == PHOTO
    assert blob_files(app) == [final]
    assert [(b["sha256"], b["size"]) for b in db["blobs"].rows] == [(PHOTO_SHA, len(PHOTO))]
    head = head_blob(client, world)
    assert (head.headers["Upload-Offset"], head.headers["Upload-Complete"]) == (
        str(len(PHOTO)),
        "true",
    )

    again = put_chunk(client, world, 0, PHOTO[:40_000])  # the same photo from another record

    assert again.status_code == 200
    assert again.get_json() == {"complete": True, "offset": len(PHOTO)}
    assert blob_files(app) == [final]
    assert db["blobs"].count == 1


def test_a_chunk_at_the_wrong_offset_is_told_where_to_resume(app, client, world):
    put_chunk(client, world, 0, PHOTO[:10_000])

    for offset in (0, 5_000, 20_000):
        response = put_chunk(client, world, offset, PHOTO[offset : offset + 10_000])

        error = assert_error(response, 409, "offset_mismatch")
        assert error["details"] == {"offset": 10_000}
        assert response.headers["Upload-Offset"] == "10000"
    assert head_blob(client, world).headers["Upload-Offset"] == "10000"
    assert put_chunk(client, world, 10_000, PHOTO[10_000:]).get_json()["complete"] is True


def test_a_chunk_past_the_announced_length_is_refused(client, world):
    put_chunk(client, world, 0, PHOTO[:60_000])

    response = put_chunk(client, world, 60_000, PHOTO[60_000:] + b"extra")

    assert_error(response, 422, "past_the_end")
    assert head_blob(client, world).headers["Upload-Offset"] == "60000"


def test_bytes_not_matching_their_hash_are_refused_and_the_partial_removed(app, client, world, db):
    spoiled = bytearray(PHOTO)
    spoiled[-1] ^= 0xFF
    put_chunk(client, world, 0, bytes(spoiled[:50_000]))

    response = put_chunk(client, world, 50_000, bytes(spoiled[50_000:]))

    assert_error(response, 422, "hash_mismatch")
    assert blob_files(app) == []
    assert db["blobs"].count == 0
    assert head_blob(client, world).headers["Upload-Offset"] == "0"
    assert upload(client, world).get_json() == {"complete": True, "offset": len(PHOTO)}


@pytest.mark.parametrize("sha", ["abc", PHOTO_SHA.upper(), PHOTO_SHA + "0", "g" * 64, "..%2F" * 13])
def test_a_malformed_blob_name_is_not_found(app, client, world, sha):
    assert head_blob(client, world, sha).status_code == 404
    assert_error(put_chunk(client, world, 0, PHOTO[:100], sha=sha), 404, "not_found")
    assert blob_files(app) == []


def test_a_photo_above_4_mb_is_refused(app, client, world):
    response = put_chunk(client, world, 0, b"x" * 1000, length=4 * 1024 * 1024 + 1)

    assert_error(response, 413, "payload_too_large")
    assert blob_files(app) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upload-Offset": "0"},
        {"Upload-Length": "10"},
        {"Upload-Offset": "zero", "Upload-Length": "10"},
        {"Upload-Offset": "0", "Upload-Length": "ten"},
    ],
)
def test_a_chunk_without_its_offset_and_length_is_refused(app, client, world, headers):
    response = client.put(
        f"/api/v1/blobs/{PHOTO_SHA}",
        data=PHOTO[:10],
        headers={**bearer(world.tokens["measurer"]), **headers},
    )

    assert_error(response, 422, "validation_failed")
    assert blob_files(app) == []


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("bureau", 403)])
def test_blobs_are_for_measurer_devices_only(app, client, world, who, status):
    headers = bearer(world.tokens[who]) if who else {}

    response = client.put(
        f"/api/v1/blobs/{PHOTO_SHA}",
        data=PHOTO[:100],
        headers={**headers, "Upload-Offset": "0", "Upload-Length": str(len(PHOTO))},
    )

    assert response.status_code == status
    assert client.head(f"/api/v1/blobs/{PHOTO_SHA}", headers=headers).status_code == status
    assert blob_files(app) == []


def test_a_measurement_awaits_its_photo_until_the_upload_completes(client, world):
    tree_id = new_id()
    response = push(
        client,
        world,
        [register(1, tree_id, world.household_a), measure(2, tree_id, photo_sha256=PHOTO_SHA)],
    )
    assert "photo_missing" not in response.get_json()["results"][1]["flags"]
    pages, cursor = pull_all(client, world)
    [tree] = [t for page in pages for t in page["trees"] if t["id"] == tree_id]
    assert tree["awaiting_photo"] is True

    upload(client, world)

    page = pull(client, world, cursor).get_json()  # the phone's next pull, from its cursor
    assert [(t["id"], t["awaiting_photo"]) for t in page["trees"]] == [(tree_id, False)]
    assert page["cursor"] > cursor
    [tree] = [t for page in pull_all(client, world)[0] for t in page["trees"] if t["id"] == tree_id]
    assert tree["awaiting_photo"] is False


# --- live -----------------------------------------------------------------------------------


def test_an_applied_push_is_announced_to_the_county_bureau(app, client, world):
    watcher = socketio.test_client(app, namespace="/live", auth={"token": world.tokens["bureau"]})
    assert watcher.is_connected("/live")
    watcher.get_received("/live")  # the welcome
    tree_id = new_id()
    ops = [register(1, tree_id, world.household_a), measure(2, tree_id), measure(3, "x" * 20)]

    push(client, world, ops)

    events = [e for e in watcher.get_received("/live") if e["name"] == "sync.applied"]
    assert len(events) == 1
    [news] = events[0]["args"]
    assert (news["village"], news["device"], news["applied"]) == (
        world.village_a,
        world.device_id,
        2,
    )
    assert news["records"] == sorted([ops[0]["op_id"], ops[1]["op_id"]])

    push(client, world, ops)  # a replay applies nothing and announces nothing

    assert [e for e in watcher.get_received("/live") if e["name"] == "sync.applied"] == []
    watcher.disconnect("/live")


def test_a_bureau_of_another_county_hears_nothing(app, client, world):
    with app.app_context():
        token_user = users.create_user(
            get_db(),
            username="bureau.xiushui",
            display_name="修水县农业农村局",
            role="bureau",
            password="correct horse battery",
            county_code="360424",
        )
        token = users.issue_token(get_db(), token_user["id"], "test")
    watcher = socketio.test_client(app, namespace="/live", auth={"token": token})
    assert watcher.is_connected("/live")
    watcher.get_received("/live")

    push(client, world, [register(1, new_id(), world.household_a)])

    assert [e for e in watcher.get_received("/live") if e["name"] == "sync.applied"] == []
    watcher.disconnect("/live")


# --- the reference client over real HTTP ----------------------------------------------------


def test_the_reference_client_syncs_an_outbox_over_http(app, world, db, tmp_path):
    photo = random.Random(150).randbytes(150 * 1024)
    tree_ids = [new_id() for _ in range(30)]
    with serving(app) as url:
        phone = SyncClient(url, world.tokens["measurer"], world.device_id, tmp_path / "phone")
        ops = []
        for i, tree_id in enumerate(tree_ids):
            ops.append(
                phone.record(
                    "tree.register",
                    tree_id,
                    {
                        "household_code": world.household_a,
                        "species_id": SPECIES,
                        "position": "road",
                    },
                    client_time=CLIENT_TIME,
                )
            )
            ops.append(
                phone.record(
                    "tree.measure",
                    tree_id,
                    {"measurement_id": new_id(), "stems_mm": [100 + i], "height_cm": 800 + i},
                    client_time=CLIENT_TIME,
                    photo=photo if i == 7 else None,
                )
            )
        assert [o["device_seq"] for o in ops] == list(range(1, 61))
        waiting = phone.status()
        assert (waiting["pending"], waiting["done"], waiting["photos_pending"]) == (60, 0, 1)
        assert waiting["oldest_pending_s"] >= 0

        status = phone.sync()

        assert (status["pending"], status["done"], status["rejected"]) == (0, 60, 0)
        assert (status["photos_pending"], status["oldest_pending_s"]) == (0, None)
        assert phone.status() == status
        results = phone.results()
        assert set(results) == {o["op_id"] for o in ops}
        assert {r["state"] for r in results.values()} == {"done"}
        assert {r["result"]["status"] for r in results.values()} == {"applied"}
        sent, received = phone.bytes_sent, phone.bytes_received

        assert phone.sync() == status  # a second sync: nothing new to send

        assert phone.bytes_sent == sent
        assert phone.bytes_received > received  # only the pull
        assert phone.push_once() == 0
        phone.db.close()

    new_trees = list(
        db["trees"].rows_where("id IN (SELECT value FROM json_each(?))", [json.dumps(tree_ids)])
    )
    assert len(new_trees) == 30
    assert db["trees"].count == 31  # and the seeded one
    assert {t["version"] for t in new_trees} == {2}
    assert (
        db["measurements"].count_where(
            "tree_id IN (SELECT value FROM json_each(?))", [json.dumps(tree_ids)]
        )
        == 30
    )
    assert db["measurements"].count == 32
    rows = list(db.query("SELECT op_id, device_seq, status FROM sync_ops ORDER BY server_seq"))
    assert [(r["op_id"], r["device_seq"], r["status"]) for r in rows] == [
        (o["op_id"], o["device_seq"], "applied") for o in ops
    ]
    sha = hashlib.sha256(photo).hexdigest()
    assert [(b["sha256"], b["size"]) for b in db["blobs"].rows] == [(sha, len(photo))]
    assert (Path(app.config["INSTANCE_PATH"]) / "blobs" / sha[:2] / sha).read_bytes() == photo
    assert phone.village["households"][world.household_a]["seq"] == 1
    assert set(tree_ids) <= set(phone.village["trees"])
    assert not any(
        t["awaiting_photo"] for t in phone.village["trees"].values() if t["id"] in tree_ids
    )


def test_a_photo_damaged_on_the_phone_is_set_aside_and_the_rest_syncs(app, world, db, tmp_path):
    """A photo whose bytes on the phone no longer hash to its name can never be accepted:
    it is not sent (not even once), the other photo arrives and the pull still runs."""
    good, bad = random.Random(151).randbytes(40_000), random.Random(152).randbytes(40_000)
    with serving(app) as url:
        phone = SyncClient(url, world.tokens["measurer"], world.device_id, tmp_path / "phone")
        for photo in (bad, good):
            tree_id = new_id()
            phone.record(
                "tree.register",
                tree_id,
                {"household_code": world.household_a, "species_id": SPECIES, "position": "road"},
                client_time=CLIENT_TIME,
            )
            phone.record(
                "tree.measure",
                tree_id,
                {"measurement_id": new_id(), "stems_mm": [120], "height_cm": 900},
                client_time=CLIENT_TIME,
                photo=photo,
            )
        bad_sha, good_sha = (hashlib.sha256(photo).hexdigest() for photo in (bad, good))
        (tmp_path / "phone" / "photos" / bad_sha).write_bytes(bad[:-1] + b"?")  # storage fault

        status = phone.sync()

        assert (status["pending"], status["done"], status["rejected"]) == (0, 4, 0)
        assert (status["photos_pending"], status["photos_damaged"]) == (0, 1)
        assert phone.village["households"][world.household_a]["seq"] == 1  # pulled
        phone.db.close()
    blobs = Path(app.config["INSTANCE_PATH"]) / "blobs"
    assert (blobs / good_sha[:2] / good_sha).read_bytes() == good
    assert not (blobs / bad_sha[:2] / bad_sha).exists()
    assert not (blobs / "partial" / f"{bad_sha}.part").exists()  # no byte of it sent
    assert [b["sha256"] for b in db["blobs"].rows] == [good_sha]


def test_the_reference_client_resends_after_a_lost_answer_without_doubling(
    app, world, db, tmp_path
):
    tree_id = new_id()
    with serving(app) as url:
        phone = SyncClient(url, world.tokens["measurer"], world.device_id, tmp_path / "phone")
        phone.record(
            "tree.register",
            tree_id,
            {"household_code": world.household_a, "species_id": SPECIES, "position": "road"},
        )
        phone.record("tree.measure", tree_id, {"measurement_id": new_id(), "stems_mm": [90]})
        # The server applied the batch but the answer never reached the phone.
        ops, body = phone._next_batch()
        delivered = SyncClient(url, world.tokens["measurer"], world.device_id, tmp_path / "copy")
        delivered._request(
            "POST",
            PUSH,
            body,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        delivered.db.close()
        assert phone.status()["pending"] == 2

        status = phone.sync()

    assert (status["pending"], status["done"]) == (0, 2)
    assert {r["result"]["status"] for r in phone.results().values()} == {"duplicate"}
    phone.db.close()
    assert db["sync_ops"].count == 2
    assert db["measurements"].count_where("tree_id = ?", [tree_id]) == 1


def test_scheduler_delays_are_full_jitter_under_a_capped_doubling_ceiling(tmp_path):
    phone = SyncClient("http://127.0.0.1:9", "token", new_id(), tmp_path / "phone")
    scheduler = SyncScheduler(phone, base=2.0, cap=300.0, rng=random.Random(11), sleep=None)

    for failures in range(1, 16):
        scheduler.failures = failures
        ceiling = min(300.0, 2.0 * 2 ** (failures - 1))
        delays = [scheduler.delay() for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9  # full jitter
    scheduler.failures = 0
    assert all(0 <= scheduler.delay() <= 2.0 for _ in range(50))

    scheduler.failures = 1
    assert all(scheduler.delay(retry_after=30) >= 30 for _ in range(50))
    scheduler.failures = 12
    with_hint = [scheduler.delay(retry_after=30) for _ in range(200)]
    assert all(30 <= d <= 300 for d in with_hint)
    phone.db.close()


def test_an_unreachable_server_is_transient_and_the_scheduler_gives_up_keeping_the_outbox(
    world, tmp_path
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound but never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        phone = SyncClient(url, world.tokens["measurer"], world.device_id, tmp_path / "phone")
        tree_id = new_id()
        recorded = [
            phone.record(
                "tree.register",
                tree_id,
                {"household_code": world.household_a, "species_id": SPECIES, "position": "road"},
            ),
            phone.record(
                "tree.measure",
                tree_id,
                {"measurement_id": new_id(), "stems_mm": [90]},
                photo=b"\xff\xd8 not really a jpeg",
            ),
        ]

        with pytest.raises(TransientError):
            phone.sync()

        slept: list[float] = []
        scheduler = SyncScheduler(
            phone, base=2.0, cap=300.0, rng=random.Random(4), sleep=slept.append
        )
        with pytest.raises(TransientError):
            scheduler.run(attempts=10)

    assert scheduler.failures == 10
    assert len(slept) == 9  # a wait between attempts, none after the last
    ceilings = [min(300.0, 2.0 * 2**i) for i in range(9)]
    assert all(0 <= d <= c for d, c in zip(slept, ceilings, strict=True))
    assert max(slept[5:]) > max(ceilings[:2])  # the waits grow with the ceiling
    status = phone.status()
    assert (status["pending"], status["done"], status["photos_pending"]) == (2, 0, 1)
    assert {r["state"] for r in phone.results().values()} == {"pending"}
    assert set(phone.results()) == {o["op_id"] for o in recorded}
    phone.db.close()


# --- property: any delivery order, any replays ----------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_order_of_batches_applies_each_operation_once_in_device_order(app, client, world, data):
    """A fresh phone per example: its operations split into batches delivered in any order,
    some twice; after every delivery the applied ones are exactly a prefix 1..k."""
    with app.app_context():
        database = get_db()
        measurer = users.get_user(world.measurer_id)
        code = devices.create_enrolment_code(database, measurer, world.user_ids["admin"])["code"]
        enrolled = devices.enrol(database, code, "property phone")
    device_id, token = enrolled["device_id"], enrolled["token"]
    count = data.draw(st.integers(1, 12), label="operations")
    tree_ids = [new_id() for _ in range(count)]
    # Odd operations register a tree, even ones measure the tree registered just before.
    ops = [
        measure(i + 1, tree_ids[i - 1])
        if i % 2
        else register(i + 1, tree_ids[i], world.household_a)
        for i in range(count)
    ]
    cuts = sorted(
        data.draw(st.sets(st.integers(1, max(count - 1, 1)), max_size=count), label="cuts")
    )
    bounds = [0, *[c for c in cuts if c < count], count]
    batches = [ops[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if ops[a:b]]
    deliveries = data.draw(
        st.permutations(batches + data.draw(st.lists(st.sampled_from(batches), max_size=4))),
        label="deliveries",
    )

    for delivered in deliveries:
        response = client.post(
            PUSH,
            json={"device_id": device_id, "sent_at": None, "ops": delivered},
            headers=bearer(token),
        )
        assert response.status_code == 200
        with app.app_context():
            rows = list(
                get_db().query(
                    "SELECT device_seq, status FROM sync_ops WHERE device_id = ? "
                    "ORDER BY server_seq",
                    [device_id],
                )
            )
        assert [r["device_seq"] for r in rows] == list(range(1, len(rows) + 1))
        assert {r["status"] for r in rows} <= {"applied"}

    with app.app_context():
        database = get_db()
        rows = list(
            database.query(
                "SELECT op_id FROM sync_ops WHERE device_id = ? ORDER BY server_seq", [device_id]
            )
        )
        held = database["sync_held"].count_where("device_id = ?", [device_id])
        stored_trees = database["trees"].count_where(
            "id IN (SELECT value FROM json_each(?))", [json.dumps(tree_ids)]
        )
    assert [r["op_id"] for r in rows] == [o["op_id"] for o in ops]
    assert held == 0
    assert stored_trees == (count + 1) // 2


def test_a_gap_open_for_over_a_day_is_reported_overdue(client, world, db):
    tree_id = new_id()
    held = push(client, world, [register(3, tree_id, world.household_a)])
    assert held.get_json()["gap"] == {
        "first_held": 3,
        "held": 1,
        "waiting_for": 1,
        "since": held.get_json()["gap"]["since"],
        "overdue": False,
    }
    assert client.get("/api/v1/sync/gaps", headers=bearer(world.tokens["admin"])).json == {
        "gaps": []
    }
    db.execute("UPDATE sync_held SET received_at = '2020-01-01T00:00:00.000Z'")
    pulled = client.get("/api/v1/sync/pull", headers=bearer(world.tokens["measurer"]))
    assert pulled.get_json()["gap"]["overdue"] is True
    for role in ("admin", "bureau"):
        listed = client.get("/api/v1/sync/gaps", headers=bearer(world.tokens[role])).json["gaps"]
        assert [(g["device_id"], g["first_held"], g["village"]) for g in listed] == [
            (world.device_id, 3, world.village_a)
        ]
    assert (
        client.get("/api/v1/sync/gaps", headers=bearer(world.tokens["verifier"])).status_code == 403
    )
    filled = push(
        client,
        world,
        [register(1, new_id(), world.household_a), register(2, new_id(), world.household_a)],
    )
    assert filled.get_json()["gap"] is None
    assert [status for _, status in outcomes(filled)] == ["applied"] * 3


# --- the pull with the push, page sizes -----------------------------------------------------


def test_a_push_without_pull_cursor_answers_as_before_and_with_it_carries_the_page(
    client, world, db
):
    first, second = new_id(), new_id()
    plain = push(client, world, [register(1, first, world.household_a)])
    assert "pull" not in plain.get_json()
    _, cursor = pull_all(client, world)

    body = {**batch(world, [register(2, second, world.household_a)]), "pull_cursor": cursor}
    carried = client.post(PUSH, json=body, headers=bearer(world.tokens["measurer"]))

    assert outcomes(carried) == [(2, "applied")]
    page = carried.get_json()["pull"]
    assert [t["id"] for t in page["trees"]] == [second]  # its own new tree, once
    assert page["more"] is False
    same = pull(client, world, cursor).get_json()
    assert {k: v for k, v in page.items() if k != "server_time"} == {
        k: v for k, v in same.items() if k != "server_time"
    }


def test_a_push_carries_no_page_when_many_changes_wait(client, world, db):
    with transaction(db):  # a village's worth of changes the phone has not pulled
        db.execute(
            """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
               INSERT INTO change_log (village_id, entity, entity_id)
               SELECT h.village_id, 'household', h.id FROM n, households h WHERE h.code = ?""",
            [world.household_a],
        )
    body = {**batch(world, [register(1, new_id(), world.household_a)]), "pull_cursor": 0}

    response = client.post(PUSH, json=body, headers=bearer(world.tokens["measurer"]))

    assert outcomes(response) == [(1, "applied")]
    assert response.get_json()["pull"] is None
    assert pull(client, world, 0).get_json()["more"] is True


@pytest.mark.parametrize("cursor", [-1, "3", 1.5, True, 2**63])
def test_a_bad_pull_cursor_refuses_the_batch_and_applies_nothing(client, world, db, cursor):
    before = counts(db)
    body = {**batch(world, [register(1, new_id(), world.household_a)]), "pull_cursor": cursor}

    response = client.post(PUSH, json=body, headers=bearer(world.tokens["measurer"]))

    error = assert_error(response, 422, "invalid_batch")
    assert error["details"] == [
        {"field": "pull_cursor", "problem": "a pull cursor (a whole number)"}
    ]
    assert counts(db) == before


def test_pull_pages_hold_at_most_limit_changes(client, world, db):
    push(client, world, [register(n, new_id(), world.household_a) for n in range(1, 4)])
    everything = pull_all(client, world)[0]
    assert len(everything) == 1

    response = client.get(f"{PULL}?cursor=0&limit=1", headers=bearer(world.tokens["measurer"]))

    page = response.get_json()
    assert page["more"] is True
    first_change = db.execute("SELECT min(seq) FROM change_log").fetchone()[0]
    assert page["cursor"] == first_change
    for limit in ("0", "5001", "x"):
        refused = client.get(
            f"{PULL}?cursor=0&limit={limit}", headers=bearer(world.tokens["measurer"])
        )
        assert_error(refused, 422, "validation_failed")
