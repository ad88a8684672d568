"""What a phone pulls: its village's changes after a cursor, a page at a time.

Serves `GET /api/v1/sync/pull` and the pull a push answer carries when the phone asks for
it and little is waiting (docs/sync.md).
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server import households
from server.carbon.method import load_method
from server.clock import iso, now_iso

PAGE = 500  # changes a page, unless the phone asks for more (`limit`)
MAX_PAGE = 5000  # over 2G a round trip costs more than the bytes of a bigger page
PIGGYBACK = 500  # a push answer carries the changes when at most this many wait
GAP_OVERDUE = timedelta(hours=24)


def _rows(db: Database, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = db.conn.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor]


def tree_rows(db: Database, ids: list[str]) -> list[dict[str, Any]]:
    """Trees as a phone sees them: latest reading with its estimate, open flags, photo."""
    rows = _rows(
        db,
        """SELECT t.id, h.code AS household, t.species_id, t.position, t.status,
                  t.tag, t.version, t.planting_year,
                  m.id AS measurement_id, m.dbh_mm, m.height_cm, m.client_time,
                  m.latitude, m.longitude,
                  m.photo_sha256, e.co2e_g,
                  (SELECT count(*) FROM blobs b WHERE b.sha256 = m.photo_sha256)
                    AS photo_received,
                  (SELECT json_group_array(json_object('id', f.id, 'code', f.code,
                          'reason', f.reason)) FROM flags f
                    WHERE f.tree_id = t.id AND f.decision IS NULL) AS open_flags
           FROM trees t JOIN households h ON h.id = t.household_id
           LEFT JOIN measurements m ON m.id = (SELECT id FROM measurements
                WHERE tree_id = t.id ORDER BY client_time DESC LIMIT 1)
           LEFT JOIN measurement_estimates e ON e.measurement_id = m.id
           WHERE t.id IN (SELECT value FROM json_each(?))""",
        [json.dumps(ids)],
    )
    for row in rows:
        row["open_flags"] = json.loads(row["open_flags"])
        row["awaiting_photo"] = bool(row.pop("photo_sha256")) and not row.pop("photo_received")
        row.pop("photo_received", None)
    return rows


def _leave_for_later_pages(db: Database, village_id: int, ids: dict[str, list], last: int) -> None:
    """Drop entities changed again after this page: a later page sends their state (the
    newest) once, instead of this page and that one both sending it."""
    for entity, entity_ids in ids.items():
        if not entity_ids:
            continue
        later = {
            str(row[0])
            for row in db.execute(  # one walk of the rest of the village's log
                "SELECT DISTINCT entity_id FROM change_log WHERE village_id = ? AND seq > ? "
                "AND entity = ? AND entity_id IN (SELECT value FROM json_each(?))",
                [village_id, last, entity, json.dumps(entity_ids)],
            )
        }
        entity_ids[:] = [i for i in entity_ids if str(i) not in later]


def waiting(db: Database, village_id: int, cursor: int) -> int:
    """How many changes of the village lie after `cursor`."""
    return db.execute(
        "SELECT count(*) FROM change_log WHERE village_id = ? AND seq > ?", [village_id, cursor]
    ).fetchone()[0]


def page(db: Database, device: dict[str, Any], cursor: int, limit: int = PAGE) -> dict[str, Any]:
    """One page of the village's changes after `cursor` (at most `limit`) for this phone."""
    village_id = device["village_id"]
    changes = db.execute(
        "SELECT seq, entity, entity_id FROM change_log WHERE village_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?",
        [village_id, cursor, limit],
    ).fetchall()
    last_on_page = changes[-1][0] if changes else cursor
    ids: dict[str, list] = {"household": [], "tree": []}
    for _, entity, entity_id in changes:
        if entity_id not in ids[entity]:
            ids[entity].append(entity_id)
    _leave_for_later_pages(db, village_id, ids, last_on_page)
    village = _rows(
        db,
        "SELECT code, name, township, latitude, longitude FROM villages WHERE id = ?",
        [village_id],
    )[0]
    method = load_method()
    newest = db.execute(
        "SELECT coalesce(max(seq), 0) FROM change_log WHERE village_id = ?", [village_id]
    ).fetchone()[0]
    return {
        "cursor": last_on_page,
        "more": last_on_page < newest,
        "village": village,
        "households": households.roster_for_phone(db, ids["household"], device["id"]),
        "trees": tree_rows(db, ids["tree"]),
        "method": {"version": method.version, "sha256": method.sha256},
        "last_seq": device["last_seq"],
        "gap": device_gap(db, device["id"], device["last_seq"]),
        "server_time": now_iso(),
    }


def device_gap(db: Database, device_id: str, last_seq: int | None) -> dict[str, Any] | None:
    """Operations of this phone held behind a missing one; `overdue` after 24 hours."""
    row = db.execute(
        """SELECT min(device_seq), count(*), min(received_at) FROM sync_held
           WHERE device_id = ? HAVING count(*) > 0""",
        [device_id],
    ).fetchone()
    if row is None:
        return None
    first_held, held, since = row
    return {
        "first_held": first_held,
        "held": held,
        "since": since,
        "waiting_for": None if last_seq is None else last_seq + 1,
        "overdue": since < iso(datetime.now(UTC) - GAP_OVERDUE),
    }
