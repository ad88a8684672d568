"""Who a push subscription speaks for, proven by the request: a household (this browser
passed its second factor on the door-plate page, or a signed push token given after it),
an order (its link's secret id), or a measurer's phone or a verifier (bearer token)."""

from typing import Any

from flask import current_app, g
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from server import households
from server.db import get_db
from server.errors import ApiError
from server.extensions import csrf
from server.registry import orders

SALT = "sipang-push-household"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def household_token(code: str) -> str:
    """A token letting a browser subscribe to `code`'s notices; give it only to someone who
    has just passed the household's second factor (it lasts PUSH_HOUSEHOLD_TOKEN_SECONDS)."""
    return _serializer().dumps({"household": code})


def _unlocked_here(code: str) -> dict[str, Any] | None:
    """The household, when this browser just passed its second factor on the door-plate page
    (a flag in the signed session cookie, server/dashboards/farmer.py); cookies ride along
    on cross-site requests, so the request must also carry the page's CSRF token."""
    from server.dashboards.farmer import unlocked

    found = households.get_household(code)
    if found is None or not unlocked(found):
        return None
    csrf.protect()
    return found


def _verified_household(code: str, token: str | None) -> dict[str, Any]:
    if token is None and (found := _unlocked_here(code)) is not None:
        return found
    try:
        claims = _serializer().loads(
            token or "", max_age=current_app.config["PUSH_HOUSEHOLD_TOKEN_SECONDS"]
        )
    except SignatureExpired as error:
        raise ApiError(
            403, "household_not_verified", "The verification expired; verify again."
        ) from error
    except BadSignature as error:
        raise ApiError(
            403, "household_not_verified", "Verify the household (second factor) first."
        ) from error
    if not isinstance(claims, dict) or claims.get("household") != code:
        raise ApiError(403, "household_not_verified", "This token is for another household.")
    found = households.get_household(code)
    if found is None:
        raise ApiError(404, "not_found", "No such household.")
    return found


def resolve(data: dict[str, Any]) -> tuple[str, str]:
    """(owner_type, owner_id) the request proves it speaks for, or the matching 4xx."""
    named = [key for key in ("household", "order") if key in data]
    if len(named) > 1:
        raise ApiError(
            422,
            "validation_failed",
            "Name one owner: a household or an order.",
            [{"field": "(body)", "problem": "has both household and order"}],
        )
    if "token" in data and named != ["household"]:
        raise ApiError(
            422,
            "validation_failed",
            "A token goes with a household.",
            [{"field": "token", "problem": "given without a household"}],
        )
    if named == ["household"]:
        found = _verified_household(data["household"], data.get("token"))
        return "household", str(found["id"])
    if named == ["order"]:
        found = orders.get_order(get_db(), data["order"])
        if found is None:
            raise ApiError(404, "not_found", "No such order.")
        return "order", str(found["id"])
    if g.user is None or g.auth != "token":
        raise ApiError(
            401,
            "unauthorized",
            "Send a bearer token, an order's id or a verified household with its token.",
        )
    if g.user["role"] == "measurer" and g.device is not None:
        return "device", g.device["id"]
    if g.user["role"] == "verifier":
        return "user", str(g.user["id"])
    raise ApiError(403, "forbidden", "Notifications are for measurers' phones and verifiers.")
