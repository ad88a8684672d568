"""Measurers' phones: one-time enrolment codes, device tokens, revocation."""

import hashlib
import secrets
import uuid
from typing import Any

from flask import Blueprint, current_app, g, jsonify
from sqlite_utils import Database

from server import audit, users
from server.access import PUBLIC, allow
from server.clock import iso_after, now_iso
from server.db import first, get_db, transaction
from server.errors import ApiError
from server.validation import json_body
from village_kits.codes import ALPHABET


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").upper().encode()).hexdigest()


def create_enrolment_code(db: Database, measurer: dict[str, Any], created_by: int) -> dict:
    """A one-time code (shown once) that enrols one phone for a measurer's village."""
    if measurer["role"] != "measurer" or not measurer["active"]:
        raise ApiError(422, "validation_failed", "Enrolment codes are for active measurers.")
    raw = "".join(secrets.choice(ALPHABET) for _ in range(12))
    code = "-".join(raw[i : i + 4] for i in range(0, 12, 4))
    expires_at = iso_after(hours=float(current_app.config["ENROLMENT_CODE_TTL_HOURS"]))
    with transaction(db):
        db["enrolment_codes"].insert(
            {
                "code_hash": _hash_code(code),
                "user_id": measurer["id"],
                "village_id": measurer["village_id"],
                "created_by": created_by,
                "created_at": now_iso(),
                "expires_at": expires_at,
            }
        )
        audit.record(db, "enrolment_code.created", f"user:{measurer['id']}")
    return {"code": code, "expires_at": expires_at}


def register_device(
    db: Database, user_id: int, village_id: int, label: str, enrolled_at: str | None = None
) -> str:
    """Record a measurer's phone; returns its new id."""
    device_id = str(uuid.uuid4())
    with transaction(db):
        db["devices"].insert(
            {
                "id": device_id,
                "user_id": user_id,
                "village_id": village_id,
                "label": label,
                "enrolled_at": enrolled_at or now_iso(),
            }
        )
        audit.record(
            db,
            "device.enrolled",
            f"device:{device_id}",
            {"user": user_id, "village_id": village_id},
            actor=f"user:{user_id}/device:{device_id}",
        )
    return device_id


def code_is_live(db: Database, code: str) -> bool:
    """Whether an enrolment code can still be spent."""
    row = first(
        db,
        "SELECT used_at, expires_at FROM enrolment_codes WHERE code_hash = ?",
        [_hash_code(code)],
    )
    return row is not None and row["used_at"] is None and row["expires_at"] > now_iso()


def enrol(db: Database, code: str, label: str) -> dict[str, Any]:
    """Spend an enrolment code: register the phone and return its bearer token."""
    row = first(
        db,
        """SELECT e.*, u.active FROM enrolment_codes e JOIN users u ON u.id = e.user_id
           WHERE e.code_hash = ?""",
        [_hash_code(code)],
    )
    if row is None or row["used_at"] or row["expires_at"] <= now_iso() or not row["active"]:
        raise ApiError(
            401, "invalid_enrolment_code", "This enrolment code is unknown, used or expired."
        )
    with transaction(db):
        device_id = register_device(db, row["user_id"], row["village_id"], label)
        spent = db.execute(
            """UPDATE enrolment_codes SET used_at = ?, device_id = ?
               WHERE id = ? AND used_at IS NULL""",
            [now_iso(), device_id, row["id"]],
        ).rowcount
        if spent != 1:
            raise ApiError(401, "invalid_enrolment_code", "This enrolment code was just used.")
        token = users.issue_token(db, row["user_id"], f"device:{label}", device_id=device_id)
    village = db["villages"].get(row["village_id"])
    return {"device_id": device_id, "token": token, "village_code": village["code"]}


def revoke(db: Database, device_id: str) -> None:
    device = first(db, "SELECT * FROM devices WHERE id = ?", [device_id])
    if device is None:
        raise ApiError(404, "not_found", "No such device.")
    with transaction(db):
        db.execute(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
            [now_iso(), device_id],
        )
        db.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE device_id = ?",
            [now_iso(), device_id],
        )
        audit.record(db, "device.revoked", f"device:{device_id}")


def touch(device: dict[str, Any]) -> None:
    """Note when a device was last seen (at most once a minute, outside the audit log)."""
    now = now_iso()
    if (device["last_seen_at"] or "") < now[:16]:
        get_db().execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", [now, device["id"]])


ENROLMENT_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["measurer_id"],
    "properties": {"measurer_id": {"type": "integer", "minimum": 1}},
    "example": {"measurer_id": 2},
}
ENROL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "label"],
    "properties": {
        "code": {"type": "string", "minLength": 1, "maxLength": 40},
        "label": {"type": "string", "minLength": 1, "maxLength": 100},
    },
    "example": {"code": "ABCD-EFGH-JKMN", "label": "红米 Note 4"},
}

bp = Blueprint("devices", __name__, url_prefix="/api/v1/devices")


@bp.get("")
@allow("admin", "bureau")
def list_devices():
    """Enrolled phones (a bureau user sees its county's)."""
    sql = """SELECT d.*, v.code AS village_code, u.username FROM devices d
             JOIN villages v ON v.id = d.village_id JOIN users u ON u.id = d.user_id"""
    params: list[Any] = []
    if g.user["role"] == "bureau":
        sql += " WHERE v.county_id = ?"
        params.append(g.user["county_id"])
    rows = get_db().query(sql + " ORDER BY d.enrolled_at", params)
    return jsonify(
        devices=[
            {
                key: row[key]
                for key in (
                    "id",
                    "label",
                    "village_code",
                    "username",
                    "enrolled_at",
                    "revoked_at",
                    "last_seen_at",
                )
            }
            for row in rows
        ]
    )


@bp.post("/enrolment-codes")
@allow("admin", body=ENROLMENT_REQUEST)
def new_enrolment_code():
    """Make a one-time enrolment code for a measurer's phone."""
    data = json_body(ENROLMENT_REQUEST)
    measurer = users.get_user(data["measurer_id"])
    if measurer is None:
        raise ApiError(404, "not_found", "No such measurer.")
    return jsonify(create_enrolment_code(get_db(), measurer, g.user["id"])), 201


@bp.post("/enrol")
@allow(PUBLIC, body=ENROL, csrf=False)
def enrol_device():
    """Enrol this phone with a one-time code; returns the device's bearer token once."""
    data = json_body(ENROL)
    return jsonify(enrol(get_db(), data["code"], data["label"])), 201


@bp.post("/<device_id>/revoke")
@allow("admin")
def revoke_device(device_id: str):
    """Revoke a phone: its token stops working at once."""
    revoke(get_db(), device_id)
    return jsonify(revoked=True)
