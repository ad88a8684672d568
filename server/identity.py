"""Who is calling: the caller found from a bearer token or a session cookie.

`enforce_access` runs before every request: it identifies the caller, refuses routes that
declare no rule (`server.access`), checks role and scope, and checks the CSRF token on
cookie-authenticated writes. Socket.IO watchers are identified by the same functions.
"""

from typing import Any

from flask import Flask, current_app, g, request, session
from werkzeug.exceptions import NotFound

from server import devices, households, users, villages
from server.access import SAFE_METHODS, Rule, rule_for
from server.db import get_db
from server.errors import ApiError
from server.extensions import csrf


def session_live(sid: object) -> bool:
    """Whether a cookie's session id was issued by sign-in and not ended by signing out."""
    if not isinstance(sid, str) or not 16 <= len(sid) <= 64:
        return False
    found = get_db().execute("SELECT 1 FROM ended_sessions WHERE sid = ?", [sid]).fetchone()
    return found is None


def session_user() -> dict[str, Any] | None:
    """The person the session cookie signs in, if the account and the session still hold."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = users.get_user(user_id)
    live = user and user["active"] and user["auth_epoch"] == session.get("auth_epoch")
    return user if live and session_live(session.get("sid")) else None


def identify() -> None:
    """Set `g.user`, `g.device` and `g.auth` ("token" or "session") from the request."""
    g.user, g.device, g.auth = None, None, None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        found = users.lookup_token(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise ApiError(401, "invalid_token", "The bearer token is unknown, expired or revoked.")
        g.user, g.device, g.auth = found["user"], found["device"], "token"
        if g.device is not None:
            devices.touch(g.device)
        return
    if session.get("user_id") is not None:
        user = session_user()
        if user is not None:
            g.user, g.auth = user, "session"
        else:
            session.clear()


def _check_scope(rule: Rule) -> None:
    args = request.view_args or {}
    if rule.scope == "village":
        village = villages.get_village(args["village_code"])
    else:
        g.household = households.get_household(args["household_code"])
        if g.household is None:
            raise NotFound("No such household.")
        village = villages.get_village_by_id(g.household["village_id"])
    if village is None:
        raise NotFound("No such village.")
    g.village = village
    if not villages.user_can_see(g.user, g.device, village):
        raise ApiError(403, "out_of_scope", "This belongs to a village outside your scope.")


def enforce_access() -> None:
    """Identify the caller and apply the route's rule; raise the matching 4xx."""
    if request.endpoint is None:
        return  # routing already failed: 404 or 405 follows
    rule = rule_for(request.endpoint)
    if rule is None:
        raise ApiError(500, "no_access_rule", "This route declares no access rule.")
    if rule.max_body_setting:
        request.max_content_length = current_app.config[rule.max_body_setting]
    identify()
    if not rule.public:
        if g.user is None:
            raise ApiError(401, "unauthorized", "Sign in or send a bearer token.")
        if g.user["role"] not in rule.roles:
            raise ApiError(403, "forbidden", "Your role may not do this.")
        if g.user["role"] == "measurer" and g.device is None:
            raise ApiError(403, "device_required", "Measurers act through an enrolled phone.")
    if request.method not in SAFE_METHODS and rule.csrf and g.auth != "token":
        csrf.protect()
    if rule.scope and g.user is not None:
        _check_scope(rule)


def init_app(app: Flask) -> None:
    app.before_request(enforce_access)
