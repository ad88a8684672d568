"""One database connection per serving thread, kept from request to request.

Sync pushes come in bursts from phones that keep their HTTP connection open; opening and
closing SQLite for each of them (connection set-up, pragmas, a WAL checkpoint at close)
costs as much as applying a batch. A blueprint opts in with `use_thread_connection`.
"""

import os
import threading

from flask import Blueprint, current_app, g
from sqlite_utils import Database

from server.db import connect

_local = threading.local()


class KeptDatabase(Database):
    """A connection the request's end does not close: it rolls back whatever is left."""

    def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.rollback()

    def close_for_good(self) -> None:
        self.conn.close()


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def thread_connection(path: str) -> KeptDatabase:
    """This thread's connection to the database file at `path` (one per thread: a new path,
    or a file replaced on disk as a restore does, opens a fresh one)."""
    kept = getattr(_local, "kept", None)
    identity = _identity(path)
    if kept is not None and kept[0] == (path, identity):
        return kept[1]
    if kept is not None:
        kept[1].close_for_good()
    db = connect(path, KeptDatabase)
    _local.kept = ((path, _identity(path)), db)
    return db


def use_thread_connection(bp: Blueprint) -> None:
    """The blueprint's requests use the serving thread's kept connection as `get_db()`."""

    @bp.url_value_preprocessor  # runs before the app's before_request (identification)
    def _kept_connection(_endpoint, _values) -> None:
        if "db" not in g:
            g.db = thread_connection(current_app.config["DATABASE"])
