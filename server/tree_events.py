"""A phone's pushed operation turned into a tree event: the tree registered, measured or its
status set (server/trees.py) after checking the household, the village and the tree's version;
what cannot be applied is refused with its reason (sync/engine.py answers the phone)."""

import sqlite3
from typing import Any

from sqlite_utils import Database

from server import households, trees
from server.carbon import flags
from server.db import transaction
from server.errors import ApiError
from server.push import triggers
from sync.engine import OperationRejected, remembered
from sync.protocol import Operation


def _tree_in_village(db: Database, tree_id: str, village_id: int) -> tuple[dict, Any, dict]:
    """The tree with its version and village, and what the checks that follow read of it:
    its registration time, species, household and planting year (one read, not three)."""
    cursor = db.execute(
        "SELECT t.id, t.version, h.village_id, t.registered_client_time, t.species_id, "
        "t.household_id, t.planting_year FROM trees t "
        "JOIN households h ON h.id = t.household_id WHERE t.id = ?",
        [tree_id],
    )
    row = cursor.fetchone()
    if row is None:
        raise OperationRejected("unknown_tree", f"no tree {tree_id[:40]}")
    if row[2] != village_id:
        raise OperationRejected("out_of_scope", "the tree is in another village")
    about = {"species_id": row[4], "household_id": row[5], "planting_year": row[6]}
    return {"id": row[0], "version": row[1], "village_id": row[2]}, row[3], about


def _flag_stale_edit(
    db: Database, op: Operation, tree: dict[str, Any], measurement: str | None
) -> None:
    """An edit made on an older version of the tree: held for review, its phone told."""
    if op.base_version is None or op.base_version == tree["version"] or measurement is None:
        return
    stale = {
        "code": "stale_edit",
        "reason": f"这条记录是在这棵树的第 {op.base_version} 版上修改的，服务器上已是第 "
        f"{tree['version']} 版：请对照两者复核。",
    }
    flags.write_flags(db, {**tree, "id": measurement, "tree_id": tree["id"]}, [stale])
    triggers.record_flagged(db, measurement, [stale])


def _register(db: Database, op: Operation, device: dict[str, Any], user_id: int) -> None:
    p = op.payload
    code = str(p.get("household_code", ""))
    # nothing in a push changes a household or its plate
    household = remembered(db, ("household", code), lambda: households.get_household(code))
    if household is None:
        raise OperationRejected("unknown_household", "no household has this code")
    if household["village_id"] != device["village_id"]:
        raise OperationRejected("out_of_scope", "the household is in another village")
    if db.execute("SELECT 1 FROM trees WHERE id = ?", [op.record_id]).fetchone():
        raise OperationRejected("duplicate_tree", "a tree with this id exists")
    trees.register_tree(
        db,
        household,
        tree_id=op.record_id,
        species_id=str(p.get("species_id", "")),
        position=str(p.get("position", "")),
        planting_year=p.get("planting_year"),
        tag=p.get("tag"),
        user_id=user_id,
        device_id=device["id"],
        registered_at=op.client_time,
    )


def apply_operation(
    db: Database,
    op: Operation,
    device: dict[str, Any],
    user_id: int,
    clock_offset_s: float | None = None,
) -> dict[str, Any]:
    """Turn one operation pushed by a phone into a tree event (inside the caller's
    transaction); OperationRejected says why it cannot be applied. A refused operation
    leaves nothing, not even dashboard news of a part of it (its own savepoint)."""
    try:
        with transaction(db):
            return _tree_event(db, op, device, user_id, clock_offset_s)
    except ApiError as error:
        raise OperationRejected(error.code, error.message) from error
    except (TypeError, ValueError, OverflowError) as error:
        raise OperationRejected("invalid", str(error)[:200]) from error
    except sqlite3.IntegrityError as error:  # a value the schema's checks refuse: this op only
        code = "conflict" if "UNIQUE" in str(error) else "invalid"
        raise OperationRejected(code, str(error)[:200]) from error


def _tree_event(
    db: Database, op: Operation, device: dict[str, Any], user_id: int, offset: float | None
) -> dict[str, Any]:
    p = op.payload
    if op.kind == "tree.register":
        _register(db, op, device, user_id)
        return {"version": 1}
    tree, registered, about = _tree_in_village(db, op.record_id, device["village_id"])
    if op.kind == "tree.measure":
        stems = p.get("stems_mm") or ([p["dbh_mm"]] if "dbh_mm" in p else None)
        if not isinstance(stems, list) or not all(type(d) is int for d in stems):
            raise OperationRejected("invalid", "stems_mm: whole millimetres")
        raised = trees.record_measurement(
            db,
            op.record_id,
            measurement_id=str(p.get("measurement_id", "")),
            stems_mm=stems,
            height_cm=p.get("height_cm"),
            client_time=op.client_time,
            latitude=p.get("latitude"),
            longitude=p.get("longitude"),
            gps_accuracy_m=p.get("gps_accuracy_m"),
            photo_sha256=p.get("photo_sha256"),
            user_id=user_id,
            device_id=device["id"],
            clock_offset_s=offset,
            registered_client_time=registered,
            tree=about | {"village_id": tree["village_id"]},
        )
        _flag_stale_edit(db, op, tree, p.get("measurement_id"))
    else:  # tree.status
        trees.set_status(
            db,
            op.record_id,
            str(p.get("status", "")),
            op.client_time,
            reason=p.get("reason"),
            photo_sha256=p.get("photo_sha256"),
            registered_client_time=registered,
        )
        raised = []
        latest = db.execute(
            "SELECT id FROM measurements WHERE tree_id = ? ORDER BY client_time DESC LIMIT 1",
            [op.record_id],
        ).fetchone()
        _flag_stale_edit(db, op, tree, latest[0] if latest else None)
    db.execute("UPDATE trees SET version = version + 1 WHERE id = ?", [op.record_id])
    return {"version": tree["version"] + 1, "flags": [f["code"] for f in raised]}
