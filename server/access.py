"""Who may call what: every route declares its roles and scope with `@allow`.

`enforce_access` runs before every request: it identifies the caller (bearer token or
session cookie), refuses routes that declare no rule, checks role and scope, and checks
the CSRF token on cookie-authenticated writes.
"""

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request, session
from werkzeug.exceptions import NotFound

from server.errors import ApiError
from server.extensions import csrf

ROLES = ("admin", "bureau", "finance", "verifier", "measurer", "enterprise")
PUBLIC = "public"
SIGNED_IN = "signed-in"
SCOPES = ("village", "household")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Rule:
    """The access rule a view declares."""

    roles: frozenset[str]
    scope: str | None
    body: dict[str, Any] | None
    csrf: bool
    summary: str
    max_body_setting: str | None = None

    @property
    def public(self) -> bool:
        return not self.roles


def allow(
    *roles: str,
    scope: str | None = None,
    body: dict[str, Any] | None = None,
    csrf: bool = True,
    max_body_setting: str | None = None,
):
    """Declare a view's roles (`PUBLIC`, `SIGNED_IN` or role names), scope and body schema.

    `scope="village"` or `"household"` limits bureau and verifier users to their county and
    measurers to their own village, found from the `village_code` / `household_code` in the
    URL. `csrf=False` is for public writes that authenticate by their own secret.
    `max_body_setting` names a setting that raises the body limit for this route (uploads).
    """
    if roles == (PUBLIC,):
        allowed: frozenset[str] = frozenset()
    elif roles == (SIGNED_IN,):
        allowed = frozenset(ROLES)
    else:
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        allowed = frozenset(roles)
    if scope not in (None, *SCOPES):
        raise ValueError(f"unknown scope {scope!r}")

    def mark(view):
        summary = (view.__doc__ or view.__name__).strip().splitlines()[0]
        view.access_rule = Rule(allowed, scope, body, csrf, summary, max_body_setting)
        return view

    return mark


def rule_for(endpoint: str) -> Rule | None:
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def current_actor() -> str:
    """How the audit log names whoever is acting now."""
    user = g.get("user")
    if user is None:
        return "public" if request else "system"
    device = g.get("device")
    return f"user:{user['id']}" + (f"/device:{device['id']}" if device else "")


def _identify() -> None:
    from server import devices, users

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
    user_id = session.get("user_id")
    if user_id is not None:
        user = users.get_user(user_id)
        from server.auth import session_live

        live = user and user["active"] and user["auth_epoch"] == session.get("auth_epoch")
        if live and session_live(session.get("sid")):
            g.user, g.auth = user, "session"
        else:
            session.clear()


def _check_scope(rule: Rule) -> None:
    from server import households, villages

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
    _identify()
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
