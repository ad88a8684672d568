"""The crediting chain's anchors: where a tree's next period starts.

A tree's first period starts from its registration stock (the first usable reading the
server received for it); every later one from the end reading of its last issued period.
Readings dated inside an issued period, or before the anchor, never count.
"""

import json
from datetime import date, timedelta
from typing import Any

from sqlite_utils import Database

from server.db import first

# A reading is usable unless a reviewer rejected one of its flags.
NOT_REJECTED = """NOT EXISTS (SELECT 1 FROM flags f WHERE f.measurement_id = m.id
                               AND f.decision = 'rejected')"""


def day_after(period_end: str) -> str:
    """The exclusive upper bound of a period ending on `period_end` (a date), as stored."""
    return f"{(date.fromisoformat(period_end) + timedelta(days=1)).isoformat()}T00:00:00.000Z"


def issued_until(db: Database, village_id: int) -> str | None:
    """The end (exclusive) of the village's latest issued period, or None."""
    row = first(
        db,
        """SELECT max(period_end) AS period_end FROM credit_calculations
           WHERE village_id = ? AND status = 'issued'""",
        [village_id],
    )
    return day_after(row["period_end"]) if row and row["period_end"] else None


def last_issued_line(db: Database, tree_id: str) -> dict[str, Any] | None:
    """The tree's line in its latest issued period."""
    return first(
        db,
        """SELECT l.*, c.period_end FROM credit_tree_lines l
           JOIN credit_calculations c ON c.id = l.calculation_id
           WHERE l.tree_id = ? AND c.status = 'issued' AND l.end_measurement_id IS NOT NULL
           ORDER BY c.period_end DESC, c.id DESC LIMIT 1""",
        [tree_id],
    )


_UNREAD = object()  # a reading the caller has not read


def registration_reading(db: Database, tree_id: str, exclude: str | None = None) -> dict | None:
    """The first usable reading the server received for the tree."""
    return first(
        db,
        f"""SELECT m.* FROM measurements m WHERE m.tree_id = ? AND m.id != ?
            AND {NOT_REJECTED} ORDER BY m.rowid LIMIT 1""",  # noqa: S608 - constant SQL
        [tree_id, exclude or ""],
    )


def tree_anchor(
    db: Database, tree_id: str, exclude: str | None = None, registration: Any = _UNREAD
) -> dict | None:
    """The reading a tree's next period starts from, with `issued` True when it ends an
    issued period (and `period_end` then). `registration`: the tree's registration reading
    (or None), when the caller has already read it."""
    line = last_issued_line(db, tree_id)
    if line is not None:
        row = first(db, "SELECT * FROM measurements WHERE id = ?", [line["end_measurement_id"]])
        return row | {"issued": True, "period_end": line["period_end"]}
    row = registration_reading(db, tree_id, exclude) if registration is _UNREAD else registration
    return None if row is None else row | {"issued": False, "period_end": None}


def sizes(row: dict[str, Any]) -> dict[str, Any]:
    """A measurement row as the estimate and the checks read it (cm, m)."""
    stems = json.loads(row["stems_mm"]) if row.get("stems_mm") else None
    return {
        "dbh_cm": row["dbh_mm"] / 10,
        "height_m": None if row["height_cm"] is None else row["height_cm"] / 100,
        "stems_cm": [d / 10 for d in stems] if stems else None,
        "client_time": row["client_time"],
        "latitude": row.get("latitude"),
        "longitude": row.get("longitude"),
        "gps_accuracy_m": row.get("gps_accuracy_m"),
        "photo_sha256": row.get("photo_sha256"),
    }
