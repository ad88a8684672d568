"""People who sign in: accounts, password hashing, bearer tokens; the admin's user routes."""

import hashlib
import re
import secrets
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, current_app, g, jsonify
from sqlite_utils import Database

from server import audit, villages
from server.access import ROLES, allow
from server.clock import iso_after, now_iso
from server.db import first, get_db, transaction
from server.errors import ApiError
from server.validation import json_body


@cache
def _hasher_with(time_cost: int, memory_kib: int) -> tuple[PasswordHasher, str]:
    """Argon2id at this cost, and a hash to verify against when the username is unknown (so
    both cases take the same time)."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    return hasher, hasher.hash(secrets.token_hex(16))


def _hasher() -> tuple[PasswordHasher, str]:
    """The instance's password hasher (a stored hash is verified at the cost it records)."""
    config = current_app.config
    return _hasher_with(config["PASSWORD_HASH_TIME_COST"], config["PASSWORD_HASH_MEMORY_KIB"])


MIN_PASSWORD_LENGTH = 10
USERNAME = re.compile(r"[A-Za-z0-9._-]{3,64}")


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    """A user as the API shows it: never the password hash."""
    db = get_db()
    county = db["counties"].get(user["county_id"]) if user["county_id"] else None
    village = db["villages"].get(user["village_id"]) if user["village_id"] else None
    return {
        "id": user["id"],
        "username": user["username"],
        "display_name": user["display_name"],
        "role": user["role"],
        "county_code": county["code"] if county else None,
        "village_code": village["code"] if village else None,
        "organisation": user["organisation"],
        "active": bool(user["active"]),
    }


def get_user(user_id: int) -> dict[str, Any] | None:
    if not 0 < user_id < 2**63:  # beyond SQLite's integers: no such user
        return None
    return first(get_db(), "SELECT * FROM users WHERE id = ?", [user_id])


def create_user(
    db: Database,
    *,
    username: str,
    display_name: str,
    role: str,
    password: str | None = None,
    county_code: str | None = None,
    village_code: str | None = None,
    organisation: str | None = None,
) -> dict[str, Any]:
    """Create an account; measurers get a village and no password (they enrol a phone)."""
    if role not in ROLES:
        raise ApiError(422, "validation_failed", f"Unknown role {role!r}.")
    if not USERNAME.fullmatch(username):
        raise ApiError(
            422,
            "validation_failed",
            "The username needs 3 to 64 letters, digits, dots, dashes or underscores.",
        )
    if not 1 <= len(display_name) <= 100:
        raise ApiError(422, "validation_failed", "The display name needs 1 to 100 characters.")
    county_id = village_id = None
    if role == "measurer":
        village = villages.get_village(village_code or "")
        if village is None:
            raise ApiError(422, "validation_failed", "A measurer needs an existing village code.")
        village_id, county_id = village["id"], village["county_id"]
        password = None
    elif role in ("bureau", "verifier"):
        county = villages.get_county(county_code or "")
        if county is None:
            raise ApiError(
                422, "validation_failed", f"A {role} user needs an existing county code."
            )
        county_id = county["id"]
    if role != "measurer" and (password is None or len(password) < MIN_PASSWORD_LENGTH):
        raise ApiError(
            422,
            "validation_failed",
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters.",
        )
    if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise ApiError(409, "conflict", f"The username {username!r} is taken.")
    with transaction(db):
        user_id = (
            db["users"]
            .insert(
                {
                    "username": username,
                    "display_name": display_name,
                    "password_hash": _hasher()[0].hash(password) if password else None,
                    "role": role,
                    "county_id": county_id,
                    "village_id": village_id,
                    "organisation": organisation,
                    "created_at": now_iso(),
                }
            )
            .last_pk
        )
        audit.record(db, "user.created", f"user:{user_id}", {"role": role})
    return db["users"].get(user_id)


def authenticate(username: str, password: str) -> dict[str, Any] | None:
    """The active user with this username and password, or None."""
    user = (
        get_db()
        .execute("SELECT id, password_hash, active FROM users WHERE username = ?", [username])
        .fetchone()
    )
    hasher, dummy = _hasher()
    try:
        hasher.verify(user[1] if user and user[1] else dummy, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user[2]:
        return None
    return get_user(user[0])


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    db: Database,
    user_id: int,
    label: str,
    device_id: str | None = None,
    ttl_days: float | None = None,
) -> str:
    """Create a bearer token (shown once; only its hash is stored)."""
    token = "sp_" + secrets.token_urlsafe(32)
    db["api_tokens"].insert(
        {
            "token_hash": _hash_token(token),
            "user_id": user_id,
            "device_id": device_id,
            "label": label,
            "created_at": now_iso(),
            "expires_at": iso_after(days=ttl_days) if ttl_days else None,
        }
    )
    return token


def lookup_token(token: str) -> dict[str, Any] | None:
    """The user (and device) behind a live bearer token, or None."""
    db = get_db()
    row = db.execute(
        """SELECT t.user_id, t.device_id FROM api_tokens t
           JOIN users u ON u.id = t.user_id
           LEFT JOIN devices d ON d.id = t.device_id
           WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.active = 1
             AND (t.expires_at IS NULL OR t.expires_at > ?)
             AND (t.device_id IS NULL OR d.revoked_at IS NULL)""",
        [_hash_token(token), now_iso()],
    ).fetchone()
    if row is None:
        return None
    g.token_hash = _hash_token(token)
    device = first(db, "SELECT * FROM devices WHERE id = ?", [row[1]]) if row[1] else None
    return {"user": first(db, "SELECT * FROM users WHERE id = ?", [row[0]]), "device": device}


def revoke_current_token(db: Database) -> None:
    with transaction(db):
        db.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE token_hash = ?", [now_iso(), g.token_hash]
        )
        audit.record(db, "token.revoked", f"user:{g.user['id']}")


def set_active(db: Database, user_id: int, active: bool) -> dict[str, Any]:
    """Enable or disable an account; disabling ends its sessions and revokes its tokens."""
    user = get_user(user_id)
    if user is None:
        raise ApiError(404, "not_found", "No such user.")
    with transaction(db):
        db.execute(
            "UPDATE users SET active = ?, auth_epoch = auth_epoch + 1 WHERE id = ?",
            [int(active), user_id],
        )
        if not active:
            db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                [now_iso(), user_id],
            )
        audit.record(db, "user.enabled" if active else "user.disabled", f"user:{user_id}")
    return get_user(user_id)


NEW_USER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "display_name", "role"],
    "properties": {
        "username": {"type": "string", "pattern": f"^{USERNAME.pattern}$"},
        "display_name": {"type": "string", "minLength": 1, "maxLength": 100},
        "role": {"enum": list(ROLES)},
        "password": {"type": "string", "minLength": MIN_PASSWORD_LENGTH, "maxLength": 200},
        "county_code": {"type": "string", "pattern": "^[0-9]{6}$"},
        "village_code": {"type": "string", "pattern": "^[0-9]{12}$"},
        "organisation": {"type": "string", "maxLength": 200},
    },
    "example": {
        "username": "finance.li",
        "display_name": "李会计",
        "role": "finance",
        "password": "correct horse battery",
    },
}

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


@bp.get("")
@allow("admin")
def list_users():
    """List every account."""
    rows = get_db()["users"].rows_where(order_by="id")
    return jsonify(users=[public_user(row) for row in rows])


@bp.post("")
@allow("admin", body=NEW_USER)
def add_user():
    """Create an account."""
    data = json_body(NEW_USER)
    user = create_user(get_db(), **data)
    return jsonify(user=public_user(user)), 201


@bp.post("/<int:user_id>/disable")
@allow("admin")
def disable_user(user_id: int):
    """Disable an account, ending its sessions, tokens and devices' access."""
    if user_id == g.user["id"]:
        raise ApiError(409, "conflict", "You cannot disable your own account.")
    return jsonify(user=public_user(set_active(get_db(), user_id, False)))


@bp.post("/<int:user_id>/enable")
@allow("admin")
def enable_user(user_id: int):
    """Enable a disabled account again."""
    return jsonify(user=public_user(set_active(get_db(), user_id, True)))


def token_ttl_days() -> float:
    return float(current_app.config["TOKEN_TTL_DAYS"])
