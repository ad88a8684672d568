"""The push worker: sends due messages with pywebpush (RFC 8291 aes128gcm, VAPID), never
inside a request.

Each message is claimed for a lease before its HTTP request, so two workers never send it
twice at once. 201/202: sent. 404/410: the browser dropped the subscription, which is
deleted with its messages. 408, 429 and 5xx and network errors: retried with full-jitter
backoff (honouring Retry-After) until PUSH_MAX_ATTEMPTS. Other 4xx: failed.
"""

import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from sqlite_utils import Database

from server.clock import iso
from server.db import connect, transaction

log = logging.getLogger(__name__)
LEASE_SECONDS = 120
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


def iso_at(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


class NotPublic(Exception):
    """The endpoint's host resolves to an address that is not on the public internet."""


def check_public(url: str, allow_loopback: bool) -> None:
    """Refuse to POST to private, loopback or link-local addresses (the endpoint came from a
    browser, so a hostile one could aim the server at its own network)."""
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as error:  # DNS down or no such host: a network error, retried
        raise requests.ConnectionError(str(error)) from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not (address.is_global or (allow_loopback and address.is_loopback)):
            raise NotPublic(f"{parts.hostname} resolves to {address}")


def retry_after(value: str | None, now: float) -> float:
    """Seconds a Retry-After header asks for (a number or an HTTP date); 0 when absent."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return 0.0


class PushSender:
    """Sends the push queue of `db`, signed with `vapid`; `clock` gives epoch seconds."""

    def __init__(
        self,
        db: Database,
        vapid: Vapid,
        *,
        contact: str,
        timeout: float = 10.0,
        retry_base_s: float = 10.0,
        retry_max_s: float = 3600.0,
        max_attempts: int = 8,
        allow_loopback: bool = False,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
    ):
        self.db, self.vapid, self.contact = db, vapid, contact
        self.timeout = timeout
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.max_attempts = max_attempts
        self.allow_loopback = allow_loopback
        self.clock = clock
        self.rng = rng or random.Random()
        self.session = session or requests.Session()

    def run_once(self, limit: int = 200) -> dict[str, int]:
        """Send every due message (up to `limit`); returns counts by outcome."""
        counts = {"sent": 0, "retry": 0, "gone": 0, "failed": 0, "expired": 0}
        now = self.clock()
        with transaction(self.db):
            counts["expired"] = self.db.execute(
                "UPDATE push_messages SET state = 'expired' WHERE state = 'pending' "
                "AND expires_at <= ?",
                [iso_at(now)],
            ).rowcount
        due = self.db.execute(
            "SELECT m.id, m.next_attempt_at FROM push_messages m WHERE m.state = 'pending' "
            "AND m.next_attempt_at <= ? ORDER BY m.next_attempt_at, m.id LIMIT ?",
            [iso_at(now), limit],
        ).fetchall()
        for message_id, due_at in due:
            message = self._claim(message_id, due_at)
            if message is not None:
                counts[self._send(message)] += 1
        return counts

    def _claim(self, message_id: int, due_at: str) -> dict[str, Any] | None:
        """Take the message for a lease (another worker may have taken it first)."""
        with transaction(self.db):
            taken = self.db.execute(
                "UPDATE push_messages SET next_attempt_at = ?, attempts = attempts + 1 "
                "WHERE id = ? AND state = 'pending' AND next_attempt_at = ?",
                [iso_at(self.clock() + LEASE_SECONDS), message_id, due_at],
            ).rowcount
        if not taken:
            return None
        rows = self.db.query(
            "SELECT m.*, s.endpoint, s.p256dh, s.auth FROM push_messages m "
            "JOIN push_subscriptions s ON s.id = m.subscription_id WHERE m.id = ?",
            [message_id],
        )
        return next(iter(rows), None)

    def _post(self, message: dict[str, Any]) -> int:
        """The push service's HTTP status for one encrypted, signed message."""
        now = self.clock()
        expires = datetime.fromisoformat(message["expires_at"].replace("Z", "+00:00"))
        ttl = max(0, int(expires.timestamp() - now))
        check_public(message["endpoint"], self.allow_loopback)
        try:
            response = webpush(
                subscription_info={
                    "endpoint": message["endpoint"],
                    "keys": {"p256dh": message["p256dh"], "auth": message["auth"]},
                },
                data=message["payload"],
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self.contact, "exp": int(now) + 12 * 3600},
                content_encoding="aes128gcm",
                headers={"Urgency": message["urgency"]},
                ttl=min(ttl, message["ttl_seconds"]) or 1,
                timeout=self.timeout,
                requests_session=self.session,
            )
        except WebPushException as error:
            response = error.response
            if response is None:
                raise
        self._retry_after = retry_after(response.headers.get("Retry-After"), now)
        return response.status_code

    def _send(self, message: dict[str, Any]) -> str:
        self._retry_after = 0.0
        try:
            status = self._post(message)
            error = None
        except NotPublic as failure:
            status, error = 400, f"refused: {failure}"[:300]  # never retried
        except (requests.RequestException, WebPushException, OSError) as failure:
            status, error = None, f"{type(failure).__name__}: {failure}"[:300]
        now = self.clock()
        with transaction(self.db):
            if status is not None and status < 300:
                self._update(message, state="sent", sent_at=iso_at(now), last_status=status)
                self.db.execute(
                    "UPDATE push_subscriptions SET last_sent_at = ? WHERE id = ?",
                    [iso_at(now), message["subscription_id"]],
                )
                return "sent"
            if status in (404, 410):
                self.db.execute(
                    "DELETE FROM push_subscriptions WHERE id = ?", [message["subscription_id"]]
                )
                log.info("push subscription %s is gone (%s)", message["subscription_id"], status)
                return "gone"
            retryable = status is None or status in RETRYABLE
            if retryable and message["attempts"] < self.max_attempts:
                cap = min(self.retry_max_s, self.retry_base_s * 2 ** (message["attempts"] - 1))
                delay = max(self.rng.uniform(0, cap), self._retry_after)
                self._update(
                    message,
                    next_attempt_at=iso_at(now + delay),
                    last_status=status,
                    last_error=error or f"HTTP {status}",
                )
                return "retry"
            self._update(
                message, state="failed", last_status=status, last_error=error or f"HTTP {status}"
            )
            log.warning("push message %s failed: %s", message["id"], error or status)
            return "failed"

    def _update(self, message: dict[str, Any], **values: Any) -> None:
        self.db["push_messages"].update(message["id"], values)


class PushService:
    """The push worker in a daemon thread, for `sipang serve`; `start()` then `stop()`."""

    def __init__(self, make_sender: Callable[[Database], PushSender], database: str):
        self.make_sender, self.database = make_sender, database
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, poll_seconds: float = 2.0) -> None:
        self._thread = threading.Thread(target=self._loop, args=(poll_seconds,), daemon=True)
        self._thread.start()

    def _loop(self, poll_seconds: float) -> None:
        db = connect(self.database)
        sender = self.make_sender(db)
        try:
            while not self._stopping.is_set():
                try:
                    sender.run_once()
                except Exception:  # noqa: BLE001 - keep the worker alive; the row stays queued
                    log.exception("push worker round failed")
                self._stopping.wait(poll_seconds)
        finally:
            db.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
