"""The push queue: `notify` writes one message per matching subscription, inside the
caller's transaction; farmers' messages wait for their quiet hours to end."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server.clock import iso
from server.db import insert
from server.push.kinds import KINDS
from server.units import BEIJING


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def quiet_until(moment: datetime, start: str | None, end: str | None) -> datetime | None:
    """When quiet hours `start`–`end` (county time, may span midnight) end, if `moment` falls
    inside them; else None."""
    if not start or not end:
        return None
    local = moment.astimezone(BEIJING)  # county time: China keeps UTC+8 all year
    now_m, start_m, end_m = local.hour * 60 + local.minute, _minutes(start), _minutes(end)
    inside = start_m <= now_m < end_m if start_m < end_m else now_m >= start_m or now_m < end_m
    if not inside:
        return None
    ends = local.replace(hour=end_m // 60, minute=end_m % 60, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(UTC)


def notify(
    db: Database,
    kind: str,
    owner_id: int | str,
    params: dict[str, Any],
    *,
    now: datetime | None = None,
) -> int:
    """Queue notice `kind` for every subscription of its owner that wants it; returns how
    many messages were queued. Call it inside the business change's transaction."""
    spec = KINDS[kind]
    now = now or datetime.now(UTC)
    payload = json.dumps(spec.payload(params), ensure_ascii=False, separators=(",", ":"))
    rows = db.execute(
        "SELECT id, kinds, quiet_start, quiet_end FROM push_subscriptions "
        "WHERE owner_type = ? AND owner_id = ?",
        [spec.owner_type, str(owner_id)],
    ).fetchall()
    queued = 0
    for sub_id, kinds, quiet_start, quiet_end in rows:
        if kind not in json.loads(kinds):
            continue
        due = quiet_until(now, quiet_start, quiet_end) or now
        insert(
            db,
            "push_messages",
            {
                "subscription_id": sub_id,
                "kind": kind,
                "payload": payload,
                "ttl_seconds": spec.ttl_seconds,
                "urgency": spec.urgency,
                "next_attempt_at": iso(due),
                "expires_at": iso(due + timedelta(seconds=spec.ttl_seconds)),
                "created_at": iso(now),
            },
        )
        queued += 1
    return queued


def status(db: Database) -> dict[str, Any]:
    """Subscriptions by owner, messages by state, and the latest failures (no endpoints)."""
    subscriptions = dict(
        db.execute(
            "SELECT owner_type, count(*) FROM push_subscriptions GROUP BY owner_type"
        ).fetchall()
    )
    messages = dict(db.execute("SELECT state, count(*) FROM push_messages GROUP BY state"))
    failures = db.query(
        "SELECT id, kind, attempts, last_status, last_error, created_at FROM push_messages "
        "WHERE state = 'failed' ORDER BY id DESC LIMIT 5"
    )
    return {"subscriptions": subscriptions, "messages": messages, "failures": list(failures)}
