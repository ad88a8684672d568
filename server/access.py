"""Who may call what: every route declares its roles and scope with `@allow`.

Rules only: who the caller is, and applying the rule to it, is `server.identity`.
"""

from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request

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
