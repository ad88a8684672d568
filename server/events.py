"""Domain events: what happened, told inside the transaction that made it happen.

Two kinds, so the domain never imports who listens:
- `publish(db, name, **data)`: a fact other parts act on in the same transaction (a push
  notification queued for a flagged record, a text message for money sent). Handlers
  registered with `handles(name)` run at once and write their rows with the change, so both
  commit or neither does.
- `announce(event, data, county_id, db=db)`: news for people watching dashboards. It is held
  until the transaction commits and then given to the sender `server.live` registers; a
  rollback (or a savepoint rolled back inside it) drops it, so nobody hears of a change that
  did not happen.

`server.db.transaction` calls `committed` and `rolled_back`; this module imports nothing of
the app, so any module may publish.
"""

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

Handler = Callable[..., Any]
Sender = Callable[[str, dict[str, Any], int], None]

_handlers: dict[str, list[Handler]] = defaultdict(list)
_senders: list[Sender] = []


def handles(name: str) -> Callable[[Handler], Handler]:
    """Register a function to run, in the publisher's transaction, on every `name` event."""

    def register(handler: Handler) -> Handler:
        if handler not in _handlers[name]:
            _handlers[name].append(handler)
        return handler

    return register


def publish(db: Database, name: str, **data: Any) -> None:
    """Tell the handlers of `name` what happened; they act in the current transaction."""
    for handler in _handlers.get(name, ()):
        handler(db, **data)


def send_announcements_with(sender: Sender) -> None:
    """Register the function that delivers announcements once their transaction commits."""
    if sender not in _senders:
        _senders.append(sender)


def _pending(db: Database) -> list[tuple[str, dict[str, Any], int]]:
    if "_announcements" not in db.__dict__:
        db._announcements = []  # type: ignore[attr-defined]
    return db._announcements  # type: ignore[attr-defined]


def announce(event: str, data: dict[str, Any], county_id: int, *, db: Database) -> None:
    """Tell the county's dashboards (and the platform's) once the transaction commits."""
    _pending(db).append((event, data, county_id))
    if not db.conn.in_transaction:
        committed(db)


def mark(db: Database) -> int:
    """How many announcements are held now (taken when a savepoint starts)."""
    return len(_pending(db))


def rolled_back(db: Database, since: int = 0) -> None:
    """Drop the announcements held since `since`: their changes were rolled back."""
    del _pending(db)[since:]


def committed(db: Database) -> None:
    """Send every held announcement, in the order they were made."""
    pending = _pending(db)
    while pending:
        event, data, county_id = pending.pop(0)
        for sender in _senders:
            sender(event, data, county_id)
