"""Sync over weak networks, as HTTP routes: push, pull and resumable photo uploads.

The protocol lives in `sync/` (no Flask); operations become tree events in `server.tree_events`,
pulls are built by `server.sync_pull`, photos are kept by `server.photos`.
"""

import gzip
import io
import json
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from server import audit, events, live, photos, sync_openapi, sync_pull, tree_events
from server.access import allow
from server.clock import iso, now_iso
from server.db import get_db, transaction, unguarded
from server.errors import ApiError
from server.openapi import describe
from server.thread_db import use_thread_connection
from server.validation import parse_json
from sync import engine
from sync.protocol import BatchError, parse_batch

MAX_INFLATED_BYTES = 4 * 1024 * 1024
_one_writer = threading.Lock()


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


@contextmanager
def _all_at_once(db) -> Iterator[None]:
    """A push's optimistic run: no savepoint per operation or per nested change, the audit
    entries written together; any failure drops its dashboard news (the engine then rolls
    the run back and applies the operations one by one)."""
    held = events.mark(db)
    try:
        with unguarded(db), audit.batched(db):
            yield
    except BaseException:
        events.rolled_back(db, held)
        raise


bp = Blueprint("sync", __name__, url_prefix="/api/v1")
use_thread_connection(bp)  # phones push in bursts over kept-alive connections


@bp.post("/sync/push")
@allow("measurer", csrf=False)
@describe(**sync_openapi.PUSH)
def push():
    """Apply a batch of operations from this phone: each once, in the phone's order; with
    `pull_cursor`, the answer carries the village's changes too when few are waiting."""
    body = _request_json()
    try:
        batch = parse_batch(body)
    except BatchError as error:
        raise ApiError(422, "invalid_batch", "The batch cannot be read.", error.problems) from error
    pull_cursor = body.get("pull_cursor")
    if pull_cursor is not None and not (type(pull_cursor) is int and 0 <= pull_cursor < 2**63):
        problem = {"field": "pull_cursor", "problem": "a pull cursor (a whole number)"}
        raise ApiError(422, "invalid_batch", "The batch cannot be read.", [problem])
    device = g.device
    if batch.device_id != device["id"]:
        raise ApiError(403, "wrong_device", "The batch names another device than the token.")
    offset = _clock_offset(batch.sent_at)
    db = get_db()
    user_id = g.user["id"]
    with _one_writer, transaction(db):  # writers queue here, not in SQLite's sleeping retries
        results = engine.push(
            db,
            device["id"],
            batch.operations,
            lambda op: tree_events.apply_operation(db, op, device, user_id, offset),
            now_iso(),
            optimistic=lambda: _all_at_once(db),
        )
    last_seq = db.execute("SELECT last_seq FROM devices WHERE id = ?", [device["id"]]).fetchone()
    applied = [r for r in results if r["status"] == "applied"]
    if applied:
        code, county_id = db.execute(
            "SELECT code, county_id FROM villages WHERE id = ?", [device["village_id"]]
        ).fetchone()
        live.announce(
            "sync.applied",
            {
                "village": code,
                "device": device["id"],
                "applied": len(applied),
                "records": sorted({r["op_id"] for r in applied}),
            },
            county_id,
        )
    answer = {
        "results": results,
        "server_time": now_iso(),
        "clock_offset_s": offset,
        "last_seq": last_seq[0],
        "gap": sync_pull.device_gap(db, device["id"], last_seq[0]),
    }
    if pull_cursor is not None:
        little = sync_pull.waiting(db, device["village_id"], pull_cursor) <= sync_pull.PIGGYBACK
        fresh = {**device, "last_seq": last_seq[0]}
        answer["pull"] = sync_pull.page(db, fresh, pull_cursor) if little else None
    return gzipped(answer)


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
    try:
        limit = int(request.args.get("limit", sync_pull.PAGE))
        if not 1 <= limit <= sync_pull.MAX_PAGE:
            raise ValueError(limit)
    except ValueError as error:
        message = f"limit is a whole number from 1 to {sync_pull.MAX_PAGE}."
        raise ApiError(422, "validation_failed", message) from error
    return gzipped(sync_pull.page(get_db(), g.device, cursor, limit))


@bp.route("/blobs/<sha256>", methods=["HEAD"])
@allow("measurer")
@describe(**sync_openapi.BLOB_STATUS)
def blob_status(sha256: str):
    """How many bytes of a photo the server holds (`Upload-Offset`), and whether it is whole."""
    photos.check_sha(sha256)
    have, whole = photos.held(sha256)
    headers = {"Upload-Offset": str(have), "Upload-Complete": "true" if whole else "false"}
    return Response(status=200, headers=headers)


@bp.put("/blobs/<sha256>")
@allow("measurer", csrf=False, max_body_setting="MAX_CONTENT_LENGTH")
@describe(**sync_openapi.BLOB_CHUNK)
def blob_chunk(sha256: str):
    """Append a chunk at `Upload-Offset` (fsynced); with `Upload-Length` reached, check the hash."""
    photos.check_sha(sha256)
    have, whole = photos.held(sha256)
    if whole:
        return jsonify(complete=True, offset=have)
    try:
        offset = int(request.headers["Upload-Offset"])
        length = int(request.headers["Upload-Length"])
    except (KeyError, ValueError) as error:
        raise ApiError(
            422, "validation_failed", "Send Upload-Offset and Upload-Length headers."
        ) from error
    try:
        have, whole = photos.receive_chunk(
            get_db(), sha256, offset, length, request.content_length, request.stream
        )
    except photos.OffsetMismatch as mismatch:
        error = {
            "status": 409,
            "code": "offset_mismatch",
            "message": str(mismatch),
            "details": {"offset": mismatch.have},
        }
        return Response(
            json.dumps({"error": error}),
            status=409,
            mimetype="application/json",
            headers={"Upload-Offset": str(mismatch.have)},
        )
    return jsonify(complete=whole, offset=have)


@bp.get("/sync/gaps")
@allow("admin", "bureau")
def gaps():
    """Phones whose operations have waited more than 24 hours for a missing one."""
    db = get_db()
    rows = engine.stale_holds(db, iso(datetime.now(UTC) - sync_pull.GAP_OVERDUE))
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
