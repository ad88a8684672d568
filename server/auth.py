"""Signing in and out: session cookies for people, bearer tokens for API clients."""

import secrets

from flask import Blueprint, current_app, g, jsonify, request, session
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import generate_csrf

from server import audit, users
from server.access import PUBLIC, SIGNED_IN, allow
from server.clock import now_iso
from server.db import get_db, transaction
from server.errors import ApiError
from server.extensions import limiter
from server.validation import json_body

CREDENTIALS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 64},
        "password": {"type": "string", "minLength": 1, "maxLength": 200},
        "label": {"type": "string", "maxLength": 100},
    },
    "example": {"username": "admin", "password": "correct horse battery"},
}


def login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def username_key() -> str:
    """The guesses at one account from one client address (never the account alone)."""
    data = request.get_json(silent=True)
    name = data.get("username") if isinstance(data, dict) else request.form.get("username")
    return f"username:{str(name or '').lower()}|address:{get_remote_address()}"


def _wrong_password(response) -> bool:
    return response.status_code == 401


# One allowance per client address (every attempt), and one per account and address
# (wrong passwords only), shared by every route that checks a password (API login, token
# exchange, the HTML form). The account itself is never locked: whoever guesses from one
# address cannot shut its owner out from another.
limit_by_address = limiter.shared_limit(login_limit, scope="password-by-address")
limit_by_username = limiter.shared_limit(
    login_limit,
    scope="password-by-username",
    key_func=username_key,
    deduct_when=_wrong_password,
)


def check_credentials(username: str, password: str) -> dict:
    """The signed-in user, or a 401 that does not say which part was wrong."""
    user = users.authenticate(username, password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "Wrong username or password.")
    if user["role"] == "measurer":
        raise ApiError(403, "device_required", "Measurers sign in by enrolling a phone.")
    return user


def start_session(user: dict) -> None:
    """Sign a person in: a fresh session id in the signed cookie, so signing out can end it."""
    session.clear()
    session["user_id"] = user["id"]
    session["auth_epoch"] = user["auth_epoch"]
    session["sid"] = secrets.token_urlsafe(24)
    session.permanent = True
    db = get_db()
    with transaction(db):
        audit.record(db, "session.started", f"user:{user['id']}", actor=f"user:{user['id']}")


def end_session() -> None:
    """Sign out: the session id is ended on the server, so a copy of the cookie saved
    before is refused too (not only this browser's cookie cleared)."""
    db = get_db()
    with transaction(db):
        sid = session.get("sid")
        if isinstance(sid, str) and 16 <= len(sid) <= 64:
            db.execute(
                "INSERT OR IGNORE INTO ended_sessions (sid, ended_at) VALUES (?, ?)",
                [sid, now_iso()],
            )
        audit.record(db, "session.ended", f"user:{g.user['id']}")
    session.clear()


bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


@bp.get("/csrf")
@allow(PUBLIC)
def csrf_token():
    """A CSRF token for cookie-authenticated writes (send it as X-CSRFToken)."""
    response = jsonify(csrf_token=generate_csrf())
    response.headers["Cache-Control"] = "no-store"  # this browser's token, for no one else
    return response


@bp.post("/login")
@limit_by_address
@limit_by_username
@allow(PUBLIC, body=CREDENTIALS)
def login():
    """Sign in with a password and receive a session cookie."""
    data = json_body(CREDENTIALS)
    user = check_credentials(data["username"], data["password"])
    start_session(user)
    return jsonify(user=users.public_user(user), csrf_token=generate_csrf())


@bp.post("/logout")
@allow(SIGNED_IN)
def logout():
    """End the session."""
    end_session()
    return jsonify(signed_out=True)


@bp.get("/me")
@allow(SIGNED_IN)
def me():
    """Who is signed in, and through which device."""
    device = g.device
    return jsonify(
        user=users.public_user(g.user),
        device={"id": device["id"], "label": device["label"]} if device else None,
        auth=g.auth,
    )


@bp.post("/tokens")
@limit_by_address
@limit_by_username
@allow(PUBLIC, body=CREDENTIALS, csrf=False)
def create_token():
    """Exchange a password for a bearer token (shown once) for API clients."""
    data = json_body(CREDENTIALS)
    user = check_credentials(data["username"], data["password"])
    db = get_db()
    with transaction(db):
        token = users.issue_token(
            db, user["id"], data.get("label", "api"), ttl_days=users.token_ttl_days()
        )
        audit.record(db, "token.issued", f"user:{user['id']}", actor=f"user:{user['id']}")
    return jsonify(token=token, token_type="Bearer", user=users.public_user(user)), 201  # noqa: S106


@bp.delete("/tokens/current")
@allow(SIGNED_IN)
def revoke_token():
    """Revoke the bearer token this request was made with."""
    if g.auth != "token":
        raise ApiError(400, "bad_request", "This request carries no bearer token.")
    users.revoke_current_token(get_db())
    return jsonify(revoked=True)
