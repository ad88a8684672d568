"""Server time as ISO-8601 UTC strings, the one format stored in the database."""

from datetime import UTC, datetime, timedelta


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A UTC timestamp with milliseconds, e.g. `2026-11-21T04:35:35.123Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_iso() -> str:
    return iso(now())


def iso_after(**delta: float) -> str:
    return iso(now() + timedelta(**delta))


def parse_client_time(text: str) -> str:
    """A phone's ISO-8601 timestamp (with its zone) as stored: UTC, `...Z`; ValueError if not."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a client time needs its time zone, e.g. 2025-06-01T16:00:00+08:00")
    return iso(moment)
