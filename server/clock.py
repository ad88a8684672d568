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
