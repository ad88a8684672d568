"""Sync over weak networks, wired into the app: push, pull and resumable photo uploads.

The protocol lives in `sync/` (no Flask); this module authenticates devices, turns
operations into tree events through the tree services, and serves the village's changes.
"""

import gzip
import hashlib
import io
import json
import os
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from server import households, live, sync_openapi, trees
from server.access import allow
from server.carbon import evidence
from server.carbon.method import load_method
from server.clock import iso, now_iso
from server.db import first, get_db, insert, transaction
from server.errors import ApiError
from server.openapi import describe
from server.validation import parse_json
from sync import engine
from sync.protocol import BatchError, Operation, parse_batch

MAX_INFLATED_BYTES = 4 * 1024 * 1024
MAX_BLOB_BYTES = 4 * 1024 * 1024
PULL_PAGE = 500
# A batch nests about five deep and holds a few hundred arrays and objects. json's C parser
# recurses once per level: once a library has raised the recursion limit (py_ecc, imported
# with web3, sets 100,000) a body of brackets exhausts the C stack and kills the process.


def _rejected(error: ApiError) -> engine.OperationRejected:
    return engine.OperationRejected(error.code, error.message)


def _tree_in_village(tree_id: str) -> dict[str, Any]:
    tree = first(
        get_db(),
        """SELECT t.*, h.village_id FROM trees t JOIN households h
                              ON h.id = t.household_id WHERE t.id = ?""",
        [tree_id],
    )
    if tree is None:
        raise engine.OperationRejected("unknown_tree", f"no tree {tree_id[:40]}")
    if tree["village_id"] != g.device["village_id"]:
        raise engine.OperationRejected("out_of_scope", "the tree is in another village")
    return tree


def _stale_flag(db, op: Operation, tree: dict[str, Any], measurement_id: str | None) -> None:
    if op.base_version is None or op.base_version == tree["version"] or measurement_id is None:
        return
    insert(
        db,
        "flags",
        {
            "measurement_id": measurement_id,
            "tree_id": tree["id"],
            "village_id": tree["village_id"],
            "code": "stale_edit",
            "reason": f"made on version {op.base_version} of the tree, but the "
            f"server had version {tree['version']}: review both",
            "created_at": now_iso(),
        },
    )


def apply_operation(op: Operation, clock_offset_s: float | None) -> dict[str, Any]:
    """Turn one pushed operation into a tree event; OperationRejected says why it cannot."""
    db, p = get_db(), op.payload
    try:
        if op.kind == "tree.register":
            household = households.get_household(str(p.get("household_code", "")))
            if household is None:
                raise engine.OperationRejected("unknown_household", "no household has this code")
            if household["village_id"] != g.device["village_id"]:
                raise engine.OperationRejected(
                    "out_of_scope", "the household is in another village"
                )
            if first(db, "SELECT 1 FROM trees WHERE id = ?", [op.record_id]):
                raise engine.OperationRejected("duplicate_tree", "a tree with this id exists")
            trees.register_tree(
                db,
                household,
                tree_id=op.record_id,
                species_id=str(p.get("species_id", "")),
                position=str(p.get("position", "")),
                planting_year=p.get("planting_year"),
                tag=p.get("tag"),
                user_id=g.user["id"],
                device_id=g.device["id"],
                registered_at=op.client_time,
            )
            return {"version": 1}
        tree = _tree_in_village(op.record_id)
        if op.kind == "tree.measure":
            stems = p.get("stems_mm") or ([p["dbh_mm"]] if "dbh_mm" in p else None)
            if not isinstance(stems, list) or not all(type(d) is int for d in stems):
                raise engine.OperationRejected("invalid", "stems_mm: whole millimetres")
            flags = trees.record_measurement(
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
                user_id=g.user["id"],
                device_id=g.device["id"],
                clock_offset_s=clock_offset_s,
            )
            _stale_flag(db, op, tree, p.get("measurement_id"))
        else:  # tree.status
            trees.set_status(db, op.record_id, str(p.get("status", "")), op.client_time)
            flags = []
            latest = first(
                db,
                "SELECT id FROM measurements WHERE tree_id = ? ORDER BY client_time DESC LIMIT 1",
                [op.record_id],
            )
            _stale_flag(db, op, tree, latest["id"] if latest else None)
        db.execute("UPDATE trees SET version = version + 1 WHERE id = ?", [op.record_id])
        return {"version": tree["version"] + 1, "flags": [f["code"] for f in flags]}
    except ApiError as error:
        raise _rejected(error) from error
    except (TypeError, ValueError, OverflowError) as error:
        raise engine.OperationRejected("invalid", str(error)[:200]) from error
    except sqlite3.IntegrityError as error:  # a value the schema's checks refuse: this op only
        code = "conflict" if "UNIQUE" in str(error) else "invalid"
        raise engine.OperationRejected(code, str(error)[:200]) from error


def _request_json() -> Any:
    raw = request.get_data(cache=False)
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        try:
            decompressor = gzip.GzipFile(fileobj=io.BytesIO(raw))
            raw = decompressor.read(MAX_INFLATED_BYTES + 1)
        except (OSError, EOFError, zlib.error) as error:
            raise ApiError(400, "invalid_gzip", "The body is not valid gzip.") from error
        if len(raw) > MAX_INFLATED_BYTES:
            raise ApiError(413, "payload_too_large", "The batch is too large once inflated.")
    return parse_json(raw)


def gzipped(payload: dict[str, Any]) -> Response:
    """JSON, gzipped when the client accepts it: pulls are read over 2G."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    response = Response(body, mimetype="application/json")
    if "gzip" in request.headers.get("Accept-Encoding", "") and len(body) > 256:
        response.set_data(gzip.compress(body, compresslevel=6))
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response


def _clock_offset(sent_at: str | None) -> float | None:
    if not sent_at:
        return None
    try:
        moment = datetime.fromisoformat(sent_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - datetime.now(UTC)).total_seconds()


bp = Blueprint("sync", __name__, url_prefix="/api/v1")


@bp.post("/sync/push")
@allow("measurer", csrf=False)
@describe(**sync_openapi.PUSH)
def push():
    """Apply a batch of operations from this phone: each once, in the phone's order."""
    try:
        batch = parse_batch(_request_json())
    except BatchError as error:
        raise ApiError(422, "invalid_batch", "The batch cannot be read.", error.problems) from error
    if batch.device_id != g.device["id"]:
        raise ApiError(403, "wrong_device", "The batch names another device than the token.")
    offset = _clock_offset(batch.sent_at)
    db = get_db()
    with transaction(db):
        results = engine.push(
            db, g.device["id"], batch.operations, lambda op: apply_operation(op, offset), now_iso()
        )
    applied = [r for r in results if r["status"] == "applied"]
    if applied:
        village = first(db, "SELECT * FROM villages WHERE id = ?", [g.device["village_id"]])
        live.announce(
            "sync.applied",
            {
                "village": village["code"],
                "device": g.device["id"],
                "applied": len(applied),
                "records": sorted({r["op_id"] for r in applied}),
            },
            village["county_id"],
        )
    last_seq = db.execute("SELECT last_seq FROM devices WHERE id = ?", [g.device["id"]]).fetchone()[
        0
    ]
    return gzipped(
        {
            "results": results,
            "server_time": now_iso(),
            "clock_offset_s": offset,
            "last_seq": last_seq,
            "gap": device_gap(g.device["id"]),
        }
    )


def _tree_rows(db, ids: list[str]) -> list[dict[str, Any]]:
    rows = db.query(
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
    out = []
    for row in rows:
        row["open_flags"] = json.loads(row["open_flags"])
        row["awaiting_photo"] = bool(row.pop("photo_sha256")) and not row.pop("photo_received")
        row.pop("photo_received", None)
        out.append(row)
    return out


def _leave_for_later_pages(db, village_id: int, ids: dict[str, list], last_on_page: int) -> None:
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
                [village_id, last_on_page, entity, json.dumps(entity_ids)],
            )
        }
        entity_ids[:] = [i for i in entity_ids if str(i) not in later]


@bp.get("/sync/pull")
@allow("measurer")
@describe(**sync_openapi.PULL)
def pull():
    """Changes in this phone's village after `cursor`: households, trees, flags, method."""
    try:
        cursor = int(request.args.get("cursor", 0))
        if not 0 <= cursor < 2**63:
            raise ValueError(cursor)
    except ValueError as error:
        raise ApiError(422, "validation_failed", "cursor is a whole number.") from error
    db = get_db()
    changes = list(
        db.query(
            "SELECT seq, entity, entity_id FROM change_log WHERE village_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            [g.device["village_id"], cursor, PULL_PAGE],
        )
    )
    last_on_page = changes[-1]["seq"] if changes else cursor
    ids = {"household": [], "tree": []}
    for change in changes:
        if change["entity_id"] not in ids[change["entity"]]:
            ids[change["entity"]].append(change["entity_id"])
    _leave_for_later_pages(db, g.device["village_id"], ids, last_on_page)
    household_rows = households.roster_for_phone(db, ids["household"], g.device["id"])
    village = first(
        db,
        "SELECT code, name, township, latitude, longitude FROM villages WHERE id = ?",
        [g.device["village_id"]],
    )
    method = load_method()
    newest = db.execute(
        "SELECT coalesce(max(seq), 0) FROM change_log WHERE village_id = ?",
        [g.device["village_id"]],
    ).fetchone()[0]
    next_cursor = changes[-1]["seq"] if changes else max(cursor, 0)
    return gzipped(
        {
            "cursor": next_cursor,
            "more": next_cursor < newest,
            "village": village,
            "households": household_rows,
            "trees": _tree_rows(db, ids["tree"]),
            "method": {"version": method.version, "sha256": method.sha256},
            "assignments": [],
            "last_seq": g.device["last_seq"],
            "gap": device_gap(g.device["id"]),
            "server_time": now_iso(),
        }
    )


def blob_paths(sha256: str) -> tuple[Path, Path]:
    root = Path(current_app.config["INSTANCE_PATH"]) / "blobs"
    return root / sha256[:2] / sha256, root / "partial" / f"{sha256}.part"


def _check_sha(sha256: str) -> None:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ApiError(404, "not_found", "A blob is named by its lower-case sha256.")


@bp.route("/blobs/<sha256>", methods=["HEAD"])
@allow("measurer")
@describe(**sync_openapi.BLOB_STATUS)
def blob_status(sha256: str):
    """How many bytes of a photo the server holds (`Upload-Offset`), and whether it is whole."""
    _check_sha(sha256)
    final, partial = blob_paths(sha256)
    if final.exists():
        return Response(
            status=200,
            headers={"Upload-Offset": str(final.stat().st_size), "Upload-Complete": "true"},
        )
    size = partial.stat().st_size if partial.exists() else 0
    return Response(status=200, headers={"Upload-Offset": str(size), "Upload-Complete": "false"})


@bp.put("/blobs/<sha256>")
@allow("measurer", csrf=False, max_body_setting="MAX_CONTENT_LENGTH")
@describe(**sync_openapi.BLOB_CHUNK)
def blob_chunk(sha256: str):
    """Append a chunk at `Upload-Offset` (fsynced); with `Upload-Length` reached, check the hash."""
    _check_sha(sha256)
    final, partial = blob_paths(sha256)
    if final.exists():
        return jsonify(complete=True, offset=final.stat().st_size)
    try:
        offset = int(request.headers["Upload-Offset"])
        length = int(request.headers["Upload-Length"])
    except (KeyError, ValueError) as error:
        raise ApiError(
            422, "validation_failed", "Send Upload-Offset and Upload-Length headers."
        ) from error
    if not 0 < length <= MAX_BLOB_BYTES:
        raise ApiError(413, "payload_too_large", f"A photo is at most {MAX_BLOB_BYTES} bytes.")
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if offset != have:
        return Response(
            json.dumps(
                {
                    "error": {
                        "status": 409,
                        "code": "offset_mismatch",
                        "message": f"The server holds {have} bytes.",
                        "details": {"offset": have},
                    }
                }
            ),
            status=409,
            mimetype="application/json",
            headers={"Upload-Offset": str(have)},
        )
    if have + (request.content_length or 0) > length:
        raise ApiError(422, "past_the_end", "This chunk goes past Upload-Length.")
    have += _append_what_arrives(partial)
    if have < length:
        return jsonify(complete=False, offset=have)
    digest = hashlib.sha256()
    with open(partial, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise ApiError(422, "hash_mismatch", "The bytes do not match their sha256; send again.")
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    db = get_db()
    with transaction(db):
        if not first(db, "SELECT 1 FROM blobs WHERE sha256 = ?", [sha256]):
            db["blobs"].insert({"sha256": sha256, "size": length, "received_at": now_iso()})
            # Trees awaiting this photo changed: the phones' next pull must say so.
            db.execute(
                """INSERT INTO change_log (village_id, entity, entity_id)
                   SELECT DISTINCT h.village_id, 'tree', t.id FROM measurements m
                   JOIN trees t ON t.id = m.tree_id JOIN households h ON h.id = t.household_id
                   WHERE m.photo_sha256 = ?""",
                [sha256],
            )
            evidence.fingerprint(db, sha256, final)  # a re-encoded copy of another tree's?
    return jsonify(complete=True, offset=have)


def _append_what_arrives(partial: Path) -> int:
    """Append the body to the partial file as it arrives; keep what came if the link drops."""
    written = 0
    with open(partial, "ab") as handle:
        try:
            while piece := request.stream.read(1 << 14):
                handle.write(piece)
                written += len(piece)
        except ClientDisconnected:
            pass  # the phone will ask where we are (HEAD) and go on from there
        finally:
            handle.flush()
            os.fsync(handle.fileno())
    return written


GAP_OVERDUE = timedelta(hours=24)


def device_gap(device_id: str) -> dict[str, Any] | None:
    """Operations of this phone held behind a missing one; `overdue` after 24 hours."""
    row = first(
        get_db(),
        """SELECT min(device_seq) AS first_held, count(*) AS held,
                                    min(received_at) AS since FROM sync_held
                             WHERE device_id = ? HAVING count(*) > 0""",
        [device_id],
    )
    if row is None:
        return None
    overdue = row["since"] < iso(datetime.now(UTC) - GAP_OVERDUE)
    return {
        **row,
        "waiting_for": g.device["last_seq"] + 1 if g.get("device") else None,
        "overdue": overdue,
    }


@bp.get("/sync/gaps")
@allow("admin", "bureau")
def gaps():
    """Phones whose operations have waited more than 24 hours for a missing one."""
    db = get_db()
    rows = engine.stale_holds(db, iso(datetime.now(UTC) - GAP_OVERDUE))
    devices = {
        row["id"]: row
        for row in db.query(
            """SELECT d.id, d.label, d.last_seq, v.code AS village, v.county_id, u.username
           FROM devices d JOIN villages v ON v.id = d.village_id
           JOIN users u ON u.id = d.user_id"""
        )
    }
    listed = [
        {
            **row,
            **{
                k: devices[row["device_id"]][k]
                for k in ("label", "village", "username", "last_seq")
            },
        }
        for row in rows
        if g.user["role"] == "admin"
        or devices[row["device_id"]]["county_id"] == g.user["county_id"]
    ]
    return jsonify(gaps=listed)
