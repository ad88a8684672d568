"""The push API: the server's VAPID public key, and subscribing or unsubscribing a browser
for a household, an order, a measurer's phone or a verifier."""

from flask import Blueprint, current_app, jsonify

from server.access import PUBLIC, allow
from server.db import get_db
from server.push import owners, subscriptions
from server.push.kinds import KINDS
from server.validation import json_body

bp = Blueprint("push", __name__, url_prefix="/api/v1/push")
# A malformed PUSH_QUIET_HOURS stops the app at start, not at a farmer's first subscription.
bp.record_once(lambda state: subscriptions.parse_quiet_hours(state.app.config["PUSH_QUIET_HOURS"]))


@bp.get("/key")
@allow(PUBLIC)
def public_key():
    """The VAPID public key browsers subscribe with (applicationServerKey), and the kinds."""
    return jsonify(
        public_key=current_app.extensions["push_public_key"],
        kinds={name: {"for": kind.owner_type, "title": kind.title} for name, kind in KINDS.items()},
    )


@bp.post("/subscriptions")
@allow(PUBLIC, csrf=False, body=subscriptions.SUBSCRIBE)
def subscribe():
    """Subscribe a browser (PushSubscription JSON) for a household (with the token its second
    factor gave), an order (its id) or, with a bearer token, a measurer's phone or a verifier;
    again with the same endpoint updates its kinds and quiet hours."""
    data = json_body(subscriptions.SUBSCRIBE)
    owner = owners.resolve(data)
    row, created = subscriptions.save(
        get_db(),
        owner,
        data,
        allow_loopback_http=current_app.config["PUSH_ALLOW_HTTP_ENDPOINTS"],
        default_quiet_hours=current_app.config["PUSH_QUIET_HOURS"],
    )
    return jsonify(subscription=subscriptions.view(row)), 201 if created else 200


@bp.delete("/subscriptions")
@allow(PUBLIC, csrf=False, body=subscriptions.UNSUBSCRIBE)
def unsubscribe():
    """Unsubscribe a browser's endpoint from the same owner it subscribed for."""
    data = json_body(subscriptions.UNSUBSCRIBE)
    owner = owners.resolve(data)
    return jsonify(removed=subscriptions.remove(get_db(), owner, data["endpoint"]))
