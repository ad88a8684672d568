"""Live updates for dashboards over Socket.IO (namespace `/live`).

Sync and writes stay plain HTTP; Socket.IO only pushes news to people watching. Events
are listed in docs/events.md. The domain announces inside its transactions
(`server.events.announce`); this module sends those announcements once they commit.
`create_app` imports this module before binding `socketio` to an app, so the handlers below
are registered on every app's Socket.IO server.
"""

from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, join_room

from server import events, identity, users
from server.extensions import socketio

NAMESPACE = "/live"
WATCHERS = ("admin", "bureau", "finance")  # who watches the money: /live and the dashboards


def _watcher(auth: Any) -> dict[str, Any] | None:
    """The signed-in watcher: a bearer token in `auth` ({"token": ...}) or the session."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if token:
        found = users.lookup_token(str(token))
        return found["user"] if found else None
    return identity.session_user()


def county_room(county_id: int) -> str:
    return f"county:{county_id}"


@socketio.on("connect", namespace=NAMESPACE)
def connect(auth: Any = None) -> None:
    """Admit an admin, finance or bureau watcher and put it in its room; refuse others."""
    user = _watcher(auth)
    if user is None or user["role"] not in WATCHERS:
        raise ConnectionRefusedError("unauthorized")
    room = county_room(user["county_id"]) if user["role"] == "bureau" else "everywhere"
    join_room(room)
    socketio.emit(
        "welcome",
        {"user": users.public_user(user), "room": room},
        namespace=NAMESPACE,
        to=request.sid,
    )


def announce(event: str, data: dict[str, Any], county_id: int) -> None:
    """Tell dashboards watching this county (and the whole platform) what happened."""
    for room in (county_room(county_id), "everywhere"):
        socketio.emit(event, data, namespace=NAMESPACE, to=room)


events.send_announcements_with(announce)
