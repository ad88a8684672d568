"""The one place that turns stored values into what people read: Beijing time in a human
format (2026年12月7日 14:05), dates, yuan from integer fen, tonnes from integer grams.

Pages (as Jinja filters), PDFs and exports all call these, so one payment shows the same date
everywhere. Stored values stay as they are: UTC ISO timestamps, integer fen, integer grams.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar, overload

K = TypeVar("K")

BEIJING = timezone(timedelta(hours=8), "北京时间")

ROLE_NAMES = {
    "admin": "平台管理员",
    "bureau": "县农业农村局",
    "finance": "财务",
    "verifier": "核查员",
    "measurer": "碳汇计量员",
    "enterprise": "企业买家",
}


def today(now: datetime | None = None) -> str:
    """Today's date in Beijing, ISO (`2026-12-07`): the day payouts, sales and figures use."""
    return (now or datetime.now(UTC)).astimezone(BEIJING).date().isoformat()


def beijing(moment: str | datetime | None) -> datetime | None:
    """A stored moment (ISO text, `Z` or offset; naive means UTC) as a Beijing datetime."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        text = moment.strip().replace("Z", "+00:00")
        if len(text) == 10:  # a bare date is already a Beijing calendar day
            return datetime.fromisoformat(text).replace(tzinfo=BEIJING)
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BEIJING)


def when(moment: str | datetime | None, empty: str = "—") -> str:
    """Beijing time to the minute: `2026年12月7日 14:05`."""
    found = beijing(moment)
    if found is None:
        return empty
    return f"{found.year}年{found.month}月{found.day}日 {found.hour:02d}:{found.minute:02d}"


def day(value: str | date | datetime | None, empty: str = "—") -> str:
    """A calendar day in Beijing: `2026年12月7日` (a timestamp is moved to Beijing first)."""
    if value is None or value == "":
        return empty
    if isinstance(value, datetime) or (isinstance(value, str) and len(value) > 10):
        value = beijing(value)
    elif isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.year}年{value.month}月{value.day}日"


def month(value: str | date | None, empty: str = "—") -> str:
    """A month: `2026年12月` from `2026-12` or a date."""
    if value is None or value == "":
        return empty
    text = value.isoformat() if isinstance(value, date) else value
    return f"{int(text[:4])}年{int(text[5:7])}月"


def beijing_date(moment: str | datetime | None) -> date | None:
    """The Beijing calendar day of a stored moment, as a date (for spreadsheet cells)."""
    found = beijing(moment)
    return None if found is None else found.date()


def spreadsheet_time(moment: str | datetime | None) -> datetime | None:
    """A stored moment as a naive Beijing datetime (what a spreadsheet cell can hold)."""
    found = beijing(moment)
    return None if found is None else found.replace(tzinfo=None)


def yuan(fen: int | None) -> str:
    """Integer fen as yuan with thousands separators: 123456 → `¥1,234.56`."""
    fen = fen or 0
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def yuan_plain(fen: int | None) -> str:
    """Integer fen as a plain yuan amount, no sign of currency or separators: 123456 →
    `1234.56` (text messages, notices, CSV files and payment providers' amount fields)."""
    fen = fen or 0
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def yuan_number(fen: int | None) -> Decimal:
    """Integer fen as an exact yuan number (for spreadsheet cells): 123456 → 1234.56."""
    return Decimal(fen or 0).scaleb(-2)


def tonnes(grams: int | None) -> str:
    """Integer grams of CO2e as tonnes with three decimals: 1234567 → `1.235`."""
    return f"{(grams or 0) / 1_000_000:,.3f}"


def tonnes_number(grams: int | None) -> Decimal:
    """Integer grams as an exact tonnes number (for spreadsheet cells)."""
    return Decimal(grams or 0).scaleb(-6)


def percent(share: float | None) -> str:
    """A share 0–1 as a percentage with one decimal, `—` when there is none."""
    return "—" if share is None else f"{share * 100:.1f}%"


def role_name(role: str | None) -> str:
    """A role's Chinese name."""
    return ROLE_NAMES.get(role or "", "访客")


@overload
def largest_remainder(total: int, weights: Mapping[K, int]) -> dict[K, int]: ...
@overload
def largest_remainder(total: int, weights: Sequence[int]) -> list[int]: ...
def largest_remainder(total, weights):
    """Split a non-negative integer `total` in proportion to non-negative integer `weights`
    (a list, or a mapping of keys to weights), nothing created or lost.

    Each part gets ⌊total·w/W⌋, then the leftover units go one each to the largest
    remainders (ties: the lower key, or the earlier position). All weights zero: every part
    is zero.
    """
    keyed = isinstance(weights, Mapping)
    keys = sorted(weights) if keyed else list(range(len(weights)))
    values = [weights[key] for key in keys]
    if total < 0 or any(w < 0 for w in values):
        raise ValueError("total and weights must be non-negative")
    weight_sum = sum(values)
    shares = [total * w // weight_sum for w in values] if weight_sum else [0] * len(values)
    if weight_sum:
        order = sorted(range(len(values)), key=lambda i: (-(total * values[i] % weight_sum), i))
        for i in order[: total - sum(shares)]:
            shares[i] += 1
    return dict(zip(keys, shares, strict=True)) if keyed else shares


FILTERS: dict[str, Any] = {
    "when": when,
    "day": day,
    "month": month,
    "yuan": yuan,
    "tonnes": tonnes,
    "pct": percent,
    "role_name": role_name,
}


def init_app(app) -> None:
    """Make the helpers Jinja filters for every template."""
    app.jinja_env.filters.update(FILTERS)
