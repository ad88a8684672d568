"""The SQLite database: one connection per request, WAL mode, numbered migrations."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import current_app, g
from sqlite_utils import Database
from sqlite_utils.utils import dedupe_keys

from server import events
from server.migrations import migrations

WRITER_WAIT_S = 30  # the same as SQLite's own busy timeout below
_writers: dict[str, threading.Lock] = {}
_writers_guard = threading.Lock()


def _writer_lock(path: str | Path) -> threading.Lock:
    """One lock per database file in this process: its writers queue in turn (SQLite makes
    a waiting writer sleep 1–100 ms between tries, long after the lock is free)."""
    key = str(Path(path).resolve())
    with _writers_guard:
        return _writers.setdefault(key, threading.Lock())


def connect(path: str | Path, kind: type[Database] = Database) -> Database:
    """Open the database file with the pragmas every connection needs."""
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
    db = kind(conn)
    db._writer = _writer_lock(path)  # type: ignore[attr-defined]
    with db.ensure_autocommit_on():
        db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA foreign_keys=on")
    db.execute("PRAGMA synchronous=normal")
    return db


def migrate(db: Database) -> None:
    """Apply every pending numbered migration, each in its own transaction."""
    migrations.apply(db)


def first(db: Database, sql: str, params: list[Any] | None = None) -> dict[str, Any] | None:
    """The first row of a query as a dict, or None (one statement: not `db.query`, which
    wraps each in a savepoint of its own; a statement that returns no rows is refused)."""
    cursor = db.conn.execute(sql, params or [])
    if cursor.description is None:
        raise ValueError("first() can only be used with SQL that returns rows")
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(dedupe_keys(d[0] for d in cursor.description), row, strict=True))


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
    conn = db.conn
    if conn.in_transaction and db.__dict__.get("_unguarded"):
        try:  # see `unguarded`: the caller undoes the whole run if anything fails inside
            yield db
        except BaseException:
            db._unguarded_failed = True  # type: ignore[attr-defined]
            raise
        return
    if conn.in_transaction:
        held = events.mark(db)
        conn.execute("SAVEPOINT nested")  # one name, one cached statement: they nest by name
        try:
            yield db
        except BaseException:
            if conn.in_transaction:  # a RAISE(ROLLBACK) trigger leaves no savepoint to undo
                conn.execute("ROLLBACK TO nested")
                conn.execute("RELEASE nested")
            events.rolled_back(db, held)
            raise
        conn.execute("RELEASE nested")
        return
    writer = db.__dict__.get("_writer")
    queued = writer is not None and writer.acquire(timeout=WRITER_WAIT_S)
    try:  # without the lock (not ours, or waited too long) SQLite's own waiting still holds
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            events.rolled_back(db)
            raise
        db.conn.execute("COMMIT")
    finally:
        if queued:
            writer.release()
    events.committed(db)


class Unguarded(Exception):
    """An exception passed through a transaction run without its savepoint (`unguarded`)."""


@contextmanager
def unguarded(db: Database) -> Iterator[None]:
    """Inside an open transaction, run nested `transaction` blocks without their savepoints;
    raises `Unguarded` at the end if an exception went through one of them, even one caught
    later, so the caller rolls back the whole run and does it again guarded. For many
    changes that nearly always succeed (a push of 25 operations)."""
    if not db.conn.in_transaction:
        raise RuntimeError("unguarded() needs an open transaction to fall back on")
    db._unguarded, db._unguarded_failed = True, False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        db._unguarded = False  # type: ignore[attr-defined]
    if db._unguarded_failed:  # type: ignore[attr-defined]
        raise Unguarded("a nested transaction failed: roll back and run guarded")


def insert(db: Database, table: str, row: dict[str, Any]) -> int:
    """Insert one row with a single statement (hot paths); returns its rowid.

    `table` and the keys come from the code, never from a request.
    """
    columns = ", ".join(f'"{name}"' for name in row)
    marks = ", ".join("?" for _ in row)
    sql = f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'  # noqa: S608 - names from code
    return db.conn.execute(sql, list(row.values())).lastrowid
