"""Web Push notifications (DESIGN.md §10, docs/push.md): VAPID keys, subscriptions, a queue
written inside business transactions, and a worker that sends it.

Business code calls `notify(db, kind, owner_id, params)` inside its transaction.
"""

from typing import Any

from flask import Flask
from sqlite_utils import Database

from server.farmer_sms import WithSms
from server.push import triggers  # noqa: F401 - registers the handlers of business events
from server.push.keys import load_or_create
from server.push.kinds import KINDS
from server.push.queue import notify
from server.push.sender import PushSender, PushService

__all__ = ["KINDS", "make_sender", "notify"]


def make_sender(config: dict[str, Any], db: Database, **options: Any):
    """A PushSender for `db` with the instance's VAPID key and the PUSH_* settings."""
    settings = {
        "contact": config["PUSH_CONTACT"],
        "timeout": config["PUSH_TIMEOUT_SECONDS"],
        "retry_max_s": config["PUSH_RETRY_MAX_SECONDS"],
        "max_attempts": config["PUSH_MAX_ATTEMPTS"],
        "allow_loopback": config["PUSH_ALLOW_HTTP_ENDPOINTS"],
    }
    return PushSender(db, load_or_create(config["INSTANCE_PATH"]), **(settings | options))


def start_worker(app: Flask):
    """Start the push worker thread for `sipang serve`; returns the service to stop."""
    config = dict(app.config)
    # farmers' text messages go out with the pushes
    service = PushService(lambda db: WithSms(app, make_sender(config, db)), config["DATABASE"])
    service.start()
    return service
