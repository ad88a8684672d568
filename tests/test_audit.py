"""The audit log: every state change is recorded, the log is append-only, tampering shows."""

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import PASSWORD, bearer

from server import create_app
from server.audit import GENESIS, audit_key, verify_chain
from server.db import get_db


def audit_rows(db, after: int = 0) -> list[dict]:
    return list(db.query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq", [after]))


def last_seq(db) -> int:
    return db.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchone()[0]


def verify(client, world, role: str = "admin"):
    response = client.get("/api/v1/audit/verify", headers=bearer(world.tokens[role]))
    assert response.status_code == 200
    return response.json


def test_every_state_change_through_the_api_is_audited(client, world, db):
    admin = bearer(world.tokens["admin"])
    actor = f"user:{world.user_ids['admin']}"
    start = last_seq(db)

    assert (
        client.post(
            "/api/v1/counties", json={"code": "330327", "name": "苍南县"}, headers=admin
        ).status_code
        == 201
    )
    village = {"code": "330327100201", "name": "新村"}
    assert client.post("/api/v1/villages", json=village, headers=admin).status_code == 201
    measurer = client.post(
        "/api/v1/users",
        json={
            "username": "measurer.new",
            "display_name": "新计量员",
            "role": "measurer",
            "village_code": "330327100201",
        },
        headers=admin,
    )
    assert measurer.status_code == 201
    measurer_id = measurer.json["user"]["id"]
    household = client.post(
        "/api/v1/villages/330327100201/households", json={"head_name": "王五"}, headers=admin
    )
    assert household.status_code == 201
    household_code = household.json["household"]["code"]
    code = client.post(
        "/api/v1/devices/enrolment-codes", json={"measurer_id": measurer_id}, headers=admin
    )
    assert code.status_code == 201
    enrolled = client.post(
        "/api/v1/devices/enrol", json={"code": code.json["code"], "label": "红米 Note 4"}
    )
    assert enrolled.status_code == 201
    device_id = enrolled.json["device_id"]
    assert client.post(f"/api/v1/devices/{device_id}/revoke", headers=admin).status_code == 200
    csrf = client.get("/api/v1/auth/csrf").json["csrf_token"]
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "finance", "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert login.status_code == 200
    logout = client.post("/api/v1/auth/logout", headers={"X-CSRFToken": login.json["csrf_token"]})
    assert logout.status_code == 200
    token = client.post("/api/v1/auth/tokens", json={"username": "bureau", "password": PASSWORD})
    assert token.status_code == 201
    revoked = client.delete("/api/v1/auth/tokens/current", headers=bearer(token.json["token"]))
    assert revoked.status_code == 200
    finance = world.user_ids["finance"]
    assert client.post(f"/api/v1/users/{finance}/disable", headers=admin).status_code == 200
    assert client.post(f"/api/v1/users/{finance}/enable", headers=admin).status_code == 200

    bureau = f"user:{world.user_ids['bureau']}"
    rows = audit_rows(db, start)
    assert [(row["action"], row["subject"], row["actor"]) for row in rows] == [
        ("county.created", "county:330327", actor),
        ("village.created", "village:330327100201", actor),
        ("user.created", f"user:{measurer_id}", actor),
        ("household.created", f"household:{household_code}", actor),
        ("enrolment_code.created", f"user:{measurer_id}", actor),
        ("device.enrolled", f"device:{device_id}", f"user:{measurer_id}/device:{device_id}"),
        ("device.revoked", f"device:{device_id}", actor),
        ("session.started", f"user:{finance}", f"user:{finance}"),
        ("session.ended", f"user:{finance}", f"user:{finance}"),
        ("token.issued", f"user:{world.user_ids['bureau']}", bureau),
        ("token.revoked", f"user:{world.user_ids['bureau']}", bureau),
        ("user.disabled", f"user:{finance}", actor),
        ("user.enabled", f"user:{finance}", actor),
    ]
    assert [row["seq"] for row in rows] == list(range(start + 1, start + 14))
    assert json.loads(rows[0]["detail"]) == {"name": "苍南县"}
    assert json.loads(rows[2]["detail"]) == {"role": "measurer"}
    assert json.loads(rows[3]["detail"]) == {"village": "330327100201"}
    assert "王五" not in str(rows)  # the household's name is personal data
    assert code.json["code"] not in str(rows) and token.json["token"] not in str(rows)
    report = verify(client, world)
    assert report == {"intact": True, "entries": start + 13, "head": rows[-1]["hash"]}


def test_each_entry_links_to_the_one_before(db):
    rows = audit_rows(db)
    assert rows, "the seeded world writes audit entries"
    assert rows[0]["prev_hash"] == GENESIS
    for previous, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == previous["hash"]
    assert len({row["hash"] for row in rows}) == len(rows)


@pytest.mark.parametrize("role", ["admin", "bureau"])
def test_verify_reports_an_intact_log_with_its_count(client, world, db, role):
    rows = audit_rows(db)
    report = verify(client, world, role)
    assert report == {"intact": True, "entries": len(rows), "head": rows[-1]["hash"]}


@pytest.mark.parametrize("role", ["finance", "verifier", "enterprise", "measurer"])
def test_verify_is_for_admin_and_bureau_only(client, world, role):
    response = client.get("/api/v1/audit/verify", headers=bearer(world.tokens[role]))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert client.get("/api/v1/audit/verify").status_code == 401


def test_empty_log_is_intact(tmp_path: Path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "empty")})
    with app.app_context():
        assert verify_chain(get_db(), audit_key()) == {
            "intact": True,
            "entries": 0,
            "head": GENESIS,
        }


def test_verify_uses_the_key_kept_in_the_instance_folder(app, world, instance: Path):
    again = create_app({"INSTANCE_PATH": str(instance)})
    with again.app_context():
        assert again.config["AUDIT_KEY"] == app.config["AUDIT_KEY"]
        assert verify_chain(get_db(), audit_key())["intact"] is True


def test_verify_with_the_wrong_key_fails(app):
    with app.app_context():
        report = verify_chain(get_db(), bytes.fromhex("11" * 32))
        assert report["intact"] is False
        assert report["broken_at"] == 1
        assert report["entries"] == 0
        assert verify_chain(get_db(), audit_key())["intact"] is True


def raw_connection(app) -> sqlite3.Connection:
    """A plain sqlite3 connection in autocommit mode, as a hand with file access would use."""
    return sqlite3.connect(app.config["DATABASE"], isolation_level=None)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET detail = '{}' WHERE seq = 1",
        "UPDATE audit_log SET actor = 'user:999'",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ],
)
def test_update_and_delete_are_refused(app, db, statement):
    before = audit_rows(db)
    conn = raw_connection(app)
    try:
        with pytest.raises((sqlite3.IntegrityError, sqlite3.OperationalError), match="append-only"):
            conn.execute(statement)
    finally:
        conn.close()
    with pytest.raises((sqlite3.IntegrityError, sqlite3.OperationalError), match="append-only"):
        db.execute(statement)
    assert audit_rows(db) == before


def test_insert_or_replace_over_an_entry_is_refused(app, db):
    first = audit_rows(db)[0]
    conn = raw_connection(app)
    try:
        with pytest.raises((sqlite3.IntegrityError, sqlite3.OperationalError)):
            conn.execute(
                "INSERT OR REPLACE INTO audit_log VALUES (1, ?, 'user:999', ?, ?, '{}', ?, ?)",
                [first["at"], first["action"], first["subject"], first["prev_hash"], "f" * 64],
            )
    finally:
        conn.close()
    assert audit_rows(db)[0] == first


@pytest.fixture
def unguarded(app):
    """A raw connection to the database with the append-only triggers dropped."""
    conn = raw_connection(app)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    yield conn
    conn.close()


def middle_seq(db) -> int:
    count = last_seq(db)
    assert count >= 5
    return count // 2


def test_edited_detail_is_detected(client, world, db, unguarded):
    seq = middle_seq(db)
    unguarded.execute("UPDATE audit_log SET detail = ? WHERE seq = ?", ['{"name": "改"}', seq])
    report = verify(client, world)
    assert report["intact"] is False
    assert report["broken_at"] == seq
    assert report["entries"] == seq - 1
    assert "does not match" in report["problem"]


@pytest.mark.parametrize("column", ["at", "actor", "action", "subject"])
def test_edited_column_is_detected(client, world, db, unguarded, column):
    seq = middle_seq(db)
    unguarded.execute(
        f"UPDATE audit_log SET {column} = {column} || 'x' WHERE seq = ?",  # noqa: S608
        [seq],
    )
    report = verify(client, world)
    assert (report["intact"], report["broken_at"]) == (False, seq)


def test_deleted_middle_entry_is_detected(client, world, db, unguarded):
    seq = middle_seq(db)
    unguarded.execute("DELETE FROM audit_log WHERE seq = ?", [seq])
    report = verify(client, world)
    assert report["intact"] is False
    assert report["broken_at"] == seq + 1
    assert report["entries"] == seq - 1
    assert report["problem"] == f"entry {seq} is missing"


def test_deleted_and_renumbered_entries_are_detected(client, world, db, unguarded):
    seq = middle_seq(db)
    unguarded.execute("DELETE FROM audit_log WHERE seq = ?", [seq])
    unguarded.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > ?", [seq])
    report = verify(client, world)
    assert (report["intact"], report["broken_at"]) == (False, seq)


def plain_hash(prev_hash: str, row: dict) -> str:
    """What a forger without the key might compute: sha256 over the same content."""
    content = json.dumps(
        [row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["detail"]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}|{content}".encode()).hexdigest()


def test_rewritten_entry_with_a_keyless_hash_is_detected(client, world, db, unguarded):
    seq = middle_seq(db)
    rows = audit_rows(db)
    prev_hash = rows[seq - 2]["hash"]
    # Rewrite the entry and re-chain every entry after it, as a forger would.
    for row in rows[seq - 1 :]:
        if row["seq"] == seq:
            row["detail"] = json.dumps({"role": "admin"})
        row["prev_hash"] = prev_hash
        row["hash"] = plain_hash(prev_hash, row)
        unguarded.execute(
            "UPDATE audit_log SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            [row["detail"], row["prev_hash"], row["hash"], row["seq"]],
        )
        prev_hash = row["hash"]
    report = verify(client, world)
    assert report["intact"] is False
    assert report["broken_at"] == seq
    assert report["entries"] == seq - 1


def test_forged_entry_appended_without_the_key_is_detected(client, world, db, unguarded):
    rows = audit_rows(db)
    forged = {
        "seq": rows[-1]["seq"] + 1,
        "at": rows[-1]["at"],
        "actor": "user:1",
        "action": "user.created",
        "subject": "user:999",
        "detail": "{}",
    }
    forged["prev_hash"] = rows[-1]["hash"]
    forged["hash"] = plain_hash(forged["prev_hash"], forged)
    unguarded.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) "
        "VALUES (:seq, :at, :actor, :action, :subject, :detail, :prev_hash, :hash)",
        forged,
    )
    report = verify(client, world)
    assert (report["intact"], report["broken_at"], report["entries"]) == (
        False,
        forged["seq"],
        len(rows),
    )
