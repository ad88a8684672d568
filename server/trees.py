"""Trees and their measurements: append-only events created on the measurer's phone."""

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, g, jsonify
from sqlite_utils import Database

from server import audit
from server.access import allow
from server.carbon import assessment, rules
from server.clock import iso, iso_after, now_iso, parse_client_time
from server.db import first, get_db, insert, transaction
from server.errors import ApiError
from server.registry import losses
from sync.engine import remembered

POSITIONS = {"house": "宅旁", "village": "村旁", "road": "路旁", "water": "水旁"}
STATUSES = ("alive", "dead", "felled")
_UNREAD = object()  # the tree's registration time, not read yet
# UUID (any version, phones make v7) or ULID: ids made offline never collide.
_CLIENT_ID = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9A-HJKMNP-TV-Z]{26})$"
)


def valid_client_id(value: str) -> bool:
    return bool(_CLIENT_ID.match(value))


def equivalent_dbh_mm(stems_mm: list[int]) -> int:
    """One diameter for a multi-stem tree: D = √(Σ dᵢ²), rounded to the millimetre."""
    return round(math.sqrt(sum(d * d for d in stems_mm)))


def register_tree(
    db: Database,
    household: dict[str, Any],
    *,
    tree_id: str,
    species_id: str,
    position: str,
    planting_year: int | None = None,
    tag: str | None = None,
    user_id: int | None = None,
    device_id: str | None = None,
    registered_at: str | None = None,
) -> None:
    """Add a tree to a household; the id comes from the phone that registered it, and
    `registered_at` is the phone's own time of registration (no reading may be older)."""
    if registered_at is not None:
        registered_at = client_moment("client_time", registered_at)
    if not valid_client_id(tree_id):
        raise ApiError(422, "validation_failed", "The tree id must be a UUID or a ULID.")
    if position not in POSITIONS:
        raise ApiError(422, "validation_failed", f"Unknown 四旁 position {position!r}.")
    if not _species_known(db, species_id):
        raise ApiError(422, "validation_failed", f"Unknown species {species_id!r}.")
    with transaction(db):
        insert(
            db,
            "trees",
            {
                "id": tree_id,
                "household_id": household["id"],
                "species_id": species_id,
                "position": position,
                "planting_year": planting_year,
                "tag": tag,
                "registered_by": user_id,
                "device_id": device_id,
                "created_at": now_iso(),
                "registered_client_time": registered_at,
            },
        )
        audit.record(
            db,
            "tree.registered",
            f"tree:{tree_id}",
            {"household": household["code"], "species": species_id},
        )


def _species_known(db: Database, species_id: str) -> bool:
    """Whether the species exists (kept for the push: nothing in one changes species)."""
    return remembered(
        db,
        ("species", species_id),
        lambda: (
            db.execute("SELECT 1 FROM species WHERE id = ?", [species_id]).fetchone() is not None
        ),
    )


def record_measurement(
    db: Database,
    tree_id: str,
    *,
    measurement_id: str,
    stems_mm: list[int],
    height_cm: int | None,
    client_time: str,
    latitude: float | None = None,
    longitude: float | None = None,
    gps_accuracy_m: float | None = None,
    photo_sha256: str | None = None,
    user_id: int | None = None,
    device_id: str | None = None,
    clock_offset_s: float | None = None,
    registered_client_time: Any = _UNREAD,
    tree: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Record one measurement of a tree (DBH of each stem in mm, height in cm).

    The carbon estimate and plausibility flags are stored with it; returns the flags.
    `registered_client_time`, `tree` (its species_id, household_id, planting_year and
    village_id): the tree's, when the caller has just read them.
    """
    if not valid_client_id(measurement_id):
        raise ApiError(422, "validation_failed", "The measurement id must be a UUID or a ULID.")
    client_time = client_moment("client_time", client_time)
    if not stems_mm or any(d <= 0 for d in stems_mm):
        raise ApiError(422, "validation_failed", "Each stem needs a positive diameter.")
    if height_cm is not None and height_cm < rules.BREAST_HEIGHT_M * 100:
        raise ApiError(
            422,
            "validation_failed",
            "胸径在 1.3 米高处量：树高不足 1.3 米的树没有胸径，请长高后再登记。",
            [{"field": "height_cm", "problem": "at least 130 when a DBH is given"}],
        )
    _not_before_registration(db, tree_id, client_time, registered_client_time)
    row = {
        "id": measurement_id,
        "tree_id": tree_id,
        "dbh_mm": equivalent_dbh_mm(stems_mm),
        "stems_mm": json.dumps(stems_mm) if len(stems_mm) > 1 else None,
        "height_cm": height_cm,
        "latitude": latitude,
        "longitude": longitude,
        "gps_accuracy_m": gps_accuracy_m,
        "photo_sha256": photo_sha256,
        "measured_by": user_id,
        "device_id": device_id,
        "client_time": client_time,
        "server_time": "",
    }
    with transaction(db):
        row["server_time"] = now_iso()
        insert(db, "measurements", row)
        audit.record(db, "tree.measured", f"tree:{tree_id}", {"measurement": measurement_id})
        # The row as just written, when reading it back could give nothing else.
        written = row | tree if tree is not None and _read_back_as_given(db, row) else None
        return assessment.assess_measurement(db, measurement_id, clock_offset_s, written)


_AS_STORED = {  # a column's declared type: the Python values SQLite returns unchanged
    "TEXT": lambda value: type(value) is str,
    "INTEGER": lambda value: type(value) is int,
    "REAL": lambda value: type(value) is float and math.isfinite(value),
}


def _read_back_as_given(db: Database, row: dict[str, Any]) -> bool:
    """Whether a measurement row, once inserted, reads back as exactly these values (each
    column named, each value already of the type its column's affinity stores it as): then
    it need not be read again."""
    columns = remembered(
        db,
        "measurement_columns",
        lambda: [(c[1], c[2]) for c in db.execute("PRAGMA table_info(measurements)")],
    )
    if [name for name, _ in columns] != list(row):
        return False
    for name, declared in columns:
        value = row[name]
        if value is not None and not _AS_STORED.get(declared, lambda _: False)(value):
            return False
    return True


def client_moment(field: str, text: Any) -> str:
    """A phone's date and time, parsed and bounded, as stored (UTC); 422 when unusable."""
    problem = None
    try:
        moment = parse_client_time(text) if isinstance(text, str) else None
    except ValueError as error:
        moment, problem = None, str(error)
    if moment is None:
        problem = problem or "a date and time with its zone, e.g. 2026-06-01T16:00:00+08:00"
    elif moment < rules.EARLIEST_CLIENT_DATE:
        problem = f"is before {rules.EARLIEST_CLIENT_DATE}"
    elif moment > iso_after(seconds=rules.MAX_AHEAD_S):
        problem = "is more than a day ahead of the server's clock"
    if problem:
        raise ApiError(
            422, "validation_failed", f"{field}: {problem}", [{"field": field, "problem": problem}]
        )
    return moment


def iso_before(moment: str, seconds: int) -> str:
    return iso(datetime.fromisoformat(moment.replace("Z", "+00:00")) - timedelta(seconds=seconds))


def _not_before_registration(
    db: Database, tree_id: str, client_time: str, registered: Any = _UNREAD
) -> None:
    if registered is _UNREAD:
        tree = db.execute(
            "SELECT registered_client_time FROM trees WHERE id = ?", [tree_id]
        ).fetchone()
        registered = tree and tree[0]
    if registered and client_time < iso_before(registered, rules.REGISTRATION_SLACK_S):
        raise ApiError(
            422,
            "before_registration",
            f"测量日期 {client_time[:10]} 早于这棵树的登记时间 {registered[:10]}。",
            [{"field": "client_time", "problem": f"before the tree's registration {registered}"}],
        )


def set_status(
    db: Database,
    tree_id: str,
    status: str,
    at: Any,
    reason: Any = None,
    photo_sha256: Any = None,
    registered_client_time: Any = _UNREAD,
) -> dict[str, Any] | None:
    """Record that a tree died or was felled (or stands again after a mistake), with the reason
    given and an optional photo (sha256 of its blob). A tree that was credited loses what it
    was credited at once: buffer tonnes are cancelled for it. Returns that loss, if any."""
    if status not in STATUSES:
        raise ApiError(422, "validation_failed", f"Unknown tree status {status!r}.")
    if reason is not None and not (isinstance(reason, str) and 1 <= len(reason) <= 40):
        raise ApiError(422, "validation_failed", "reason: a short text (1–40 characters).")
    if photo_sha256 is not None and not (
        isinstance(photo_sha256, str) and re.fullmatch(r"[0-9a-f]{64}", photo_sha256)
    ):
        raise ApiError(422, "validation_failed", "photo_sha256: 64 lower-case hex digits.")
    at = client_moment("at", at)
    _not_before_registration(db, tree_id, at, registered_client_time)
    with transaction(db):
        tree = first(db, "SELECT status FROM trees WHERE id = ?", [tree_id])
        if tree is None:
            raise ApiError(404, "not_found", "No such tree.")
        db.execute(
            """UPDATE trees SET status = ?, status_changed_at = ?, status_reason = ?,
                      status_photo_sha256 = ? WHERE id = ?""",
            [status, at, reason, photo_sha256, tree_id],
        )
        loss = None
        if status != "alive" and tree["status"] == "alive":
            loss = losses.debit_tree(db, tree_id, status)
        audit.record(
            db,
            f"tree.{status}",
            f"tree:{tree_id}",
            {"at": at, "loss": loss and loss["id"], "reason": reason, "photo": photo_sha256},
        )
    return loss


def tree_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "species_id": row["species_id"],
        "species_name_zh": row["name_zh"],
        "position": row["position"],
        "position_zh": POSITIONS[row["position"]],
        "planting_year": row["planting_year"],
        "tag": row["tag"],
        "status": row["status"],
        "measurements": row["measurements"],
        "latest": None
        if row["dbh_mm"] is None
        else {
            "dbh_cm": row["dbh_mm"] / 10,
            "height_m": None if row["height_cm"] is None else row["height_cm"] / 100,
            "measured_at": row["client_time"],
            "co2e_g": row["co2e_g"],
            "route": row["route"],
        },
        "open_flags": row["open_flags"],
    }


bp = Blueprint("trees", __name__, url_prefix="/api/v1")


@bp.get("/households/<household_code>/trees")
@allow("admin", "bureau", "verifier", "measurer", scope="household")
def household_trees(household_code: str):
    """A household's trees with their latest measurement."""
    rows = get_db().query(
        """SELECT t.*, s.name_zh,
                  (SELECT count(*) FROM measurements m WHERE m.tree_id = t.id) AS measurements,
                  m.dbh_mm, m.height_cm, m.client_time, e.co2e_g, e.route,
                  (SELECT count(*) FROM flags f WHERE f.tree_id = t.id
                    AND f.decision IS NULL) AS open_flags
           FROM trees t JOIN species s ON s.id = t.species_id
           LEFT JOIN measurements m ON m.id = (
               SELECT id FROM measurements WHERE tree_id = t.id
               ORDER BY client_time DESC LIMIT 1)
           LEFT JOIN measurement_estimates e ON e.measurement_id = m.id
           WHERE t.household_id = ? ORDER BY t.created_at, t.id""",
        [g.household["id"]],
    )
    return jsonify(trees=[tree_view(row) for row in rows])
