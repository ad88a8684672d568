"""Migrations build the schema from an empty database, once, in order."""

import sqlite3

import pytest

from server.db import connect, migrate
from server.migrations import migrations, split_statements

TABLES = {
    "counties",
    "villages",
    "households",
    "species",
    "trees",
    "measurements",
    "users",
    "devices",
    "enrolment_codes",
    "api_tokens",
    "audit_log",
}


def test_migrations_build_the_schema_from_an_empty_database(tmp_path):
    db = connect(tmp_path / "empty.db")
    assert db.table_names() == []
    migrate(db)
    assert set(db.table_names()) >= TABLES
    applied = [row["name"] for row in db["_sqlite_migrations"].rows]
    assert applied == [m.name for m in migrations._migrations]
    assert applied[0] == "0001_foundation"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrating_twice_changes_nothing(tmp_path):
    db = connect(tmp_path / "twice.db")
    migrate(db)
    schema = db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    migrate(db)
    assert db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert db["_sqlite_migrations"].count == len(migrations._migrations)


def test_household_personal_data_columns_are_encrypted_only(tmp_path):
    db = connect(tmp_path / "cols.db")
    migrate(db)
    columns = set(db["households"].columns_dict)
    assert {"phone", "id_number", "bank_account", "head_name"}.isdisjoint(columns)
    assert {"phone_enc", "id_number_enc", "bank_account_enc", "head_name_enc"} <= columns


def test_schema_constraints_refuse_bad_rows(tmp_path):
    db = connect(tmp_path / "checks.db")
    migrate(db)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO counties (code, name, created_at) VALUES ('36042', 'x', 'now')")
    with pytest.raises(sqlite3.IntegrityError):  # a measurer must belong to a village
        db.execute(
            "INSERT INTO users (username, display_name, role, created_at) "
            "VALUES ('m1', 'm', 'measurer', 'now')"
        )


def test_split_statements_keeps_triggers_whole():
    script = (
        "CREATE TABLE a (x);\nCREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n"
        "    SELECT RAISE(ABORT, 'no');\nEND;\n"
    )
    assert len(split_statements(script)) == 2
    with pytest.raises(ValueError):
        split_statements("CREATE TABLE b (x")
