"""Numbered schema migrations, applied in order and recorded in `_sqlite_migrations`.

Each migration is a `NNNN_name.sql` file beside this module; add a new file, never edit an
applied one.
"""

import sqlite3
from importlib import resources

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("sipang")


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (triggers stay whole)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:60]}")
    return statements


def _register(filename: str) -> None:
    script = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")

    def apply(db: Database) -> None:
        for statement in split_statements(script):
            db.execute(statement)

    migrations(name=filename.removesuffix(".sql"))(apply)


for _name in sorted(
    entry.name for entry in resources.files(__package__).iterdir() if entry.name.endswith(".sql")
):
    _register(_name)
