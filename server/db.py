"""The SQLite database: one connection per request, WAL mode, numbered migrations."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import current_app, g
from sqlite_utils import Database

from server import events
from server.migrations import migrations


def connect(path: str | Path) -> Database:
    """Open the database file with the pragmas every connection needs."""
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db = Database(conn)
    with db.ensure_autocommit_on():
        db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA foreign_keys=on")
    db.execute("PRAGMA synchronous=normal")
    return db


def migrate(db: Database) -> None:
    """Apply every pending numbered migration, each in its own transaction."""
    migrations.apply(db)


def first(db: Database, sql: str, params: list[Any] | None = None) -> dict[str, Any] | None:
    """The first row of a query as a dict, or None."""
    return next(iter(db.query(sql, params or [])), None)


def get_db() -> Database:
    """The current request's database connection."""
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One write transaction (BEGIN IMMEDIATE, so writers queue instead of failing).

    Nested calls become savepoints; any exception rolls back everything inside. Dashboard
    announcements made inside are sent after the commit and dropped on a rollback.
    """
    if db.conn.in_transaction:
        held = events.mark(db)
        try:
            with db.atomic():
                yield db
        except BaseException:
            events.rolled_back(db, held)
            raise
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        events.rolled_back(db)
        raise
    db.conn.execute("COMMIT")
    events.committed(db)


def insert(db: Database, table: str, row: dict[str, Any]) -> int:
    """Insert one row with a single statement (hot paths); returns its rowid.

    `table` and the keys come from the code, never from a request.
    """
    columns = ", ".join(f'"{name}"' for name in row)
    marks = ", ".join("?" for _ in row)
    sql = f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'  # noqa: S608 - names from code
    return db.conn.execute(sql, list(row.values())).lastrowid
