"""The one writer of plausibility flags: open flags hold a record for review; information
flags are stored already settled, so reviewers see them and nothing waits on them."""

from typing import Any

from sqlite_utils import Database

from server.carbon.plausibility import INFORMATION_ONLY
from server.clock import now_iso

SETTLED_NOTE = "仅提示，不需复核"
_INSERT = """INSERT INTO flags (measurement_id, tree_id, village_id, code, reason, created_at,
    decision, reviewed_at, review_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def write_flags(db: Database, measurement: dict[str, Any], flags: list[dict[str, str]]) -> None:
    """Store a measurement's flags (inside the caller's transaction)."""
    now = now_iso()
    rows = []
    for flag in flags:
        settled = flag["code"] in INFORMATION_ONLY
        rows.append(
            (
                measurement["id"],
                measurement["tree_id"],
                measurement["village_id"],
                flag["code"],
                flag["reason"],
                now,
                "accepted" if settled else None,
                now if settled else None,
                SETTLED_NOTE if settled else None,
            )
        )
    db.conn.executemany(_INSERT, rows)  # one statement, a row (and its triggers) per flag


def blocking(flags: list[dict[str, str]]) -> list[dict[str, str]]:
    """The flags that hold a record for review."""
    return [f for f in flags if f["code"] not in INFORMATION_ONLY]
