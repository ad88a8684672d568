"""Who a push subscription speaks for, proven by the request: a household (this browser
passed its second factor on the door-plate page, or a signed push token given after it:
`server.plate.second_factor`),
an order (its link's secret id), or a measurer's phone or a verifier (bearer token)."""

from typing import Any

from flask import g

from server.db import get_db
from server.errors import ApiError
from server.plate.second_factor import household_token, verified_household
from server.registry import orders

__all__ = ["household_token", "resolve"]


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
        found = verified_household(data["household"], data.get("token"))
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
