"""The farmers' money as the dashboards count it: accrued, paid, pending, owed, overdue.

Reads the payouts tables (migration 0007, docs/payouts.md) and `payout_balances`
(migration 0009, kept by triggers). T+1, as docs/payouts.md defines it: an accrual of
Beijing day T is due on T+1; as of day X a household's overdue fen are
max(0, Σ accruals dated before X − 1 day − Σ paid settlements). Arrival rate is the share
of what fell due that has arrived: (due − overdue) / due.
"""

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlite_utils import Database

from server import units

FIELDS = ("accrued_fen", "paid_fen", "pending_fen", "owed_fen", "due_fen", "overdue_fen")
COUNTS = ("payees", "overdue_households")


def blank() -> dict[str, int]:
    return dict.fromkeys((*FIELDS, *COUNTS), 0)


def due_before(today: str) -> str:
    """Accruals dated before this Beijing day have fallen due (they were due yesterday)."""
    return (date.fromisoformat(today) - timedelta(days=1)).isoformat()


def arrival(figures: dict[str, Any]) -> float | None:
    """Share of the fen that fell due which has arrived; None when nothing fell due yet."""
    due = figures.get("due_fen") or 0
    if due <= 0:
        return None
    return round((due - (figures.get("overdue_fen") or 0)) / due, 4)


def add_up(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    total = blank()
    for row in rows:
        for key in total:
            total[key] += row.get(key) or 0
    return total


_RECENT = """
WITH recent AS (
    SELECT household_id, sum(amount_fen) AS fen FROM accruals {index}
    WHERE {scope} AND accrued_on >= :due_before GROUP BY household_id
)"""

_PER_HOUSEHOLD = """,
per AS (
    SELECT b.household_id, b.village_id, b.accrued_fen, b.paid_fen, b.pending_fen,
           b.accrued_fen - coalesce(r.fen, 0) AS due_fen, b.last_paid_at
    FROM payout_balances b LEFT JOIN recent r ON r.household_id = b.household_id
    WHERE {where}
)
"""

# The county's worst households without computing every household's overdue: those with
# no accrual in the last two days owe everything they are owed as overdue, so the index on
# (county, owed) gives their top N; the few with recent accruals are computed exactly.
_WORST = """,
settled AS (
    SELECT household_id FROM payout_balances
    WHERE county_id = :county AND household_id NOT IN (SELECT household_id FROM recent)
    ORDER BY accrued_fen - paid_fen DESC LIMIT :limit
),
fresh AS (
    SELECT household_id FROM (
        SELECT b.household_id, max(b.accrued_fen - b.paid_fen - r.fen, 0) AS overdue,
               b.accrued_fen - b.paid_fen AS owed
        FROM recent r JOIN payout_balances b ON b.household_id = r.household_id
        ORDER BY overdue DESC, owed DESC LIMIT :limit)
),
per AS (
    SELECT b.household_id, b.village_id, b.accrued_fen, b.paid_fen, b.pending_fen,
           b.accrued_fen - coalesce(r.fen, 0) AS due_fen, b.last_paid_at
    FROM payout_balances b LEFT JOIN recent r ON r.household_id = b.household_id
    WHERE b.household_id IN (SELECT household_id FROM settled UNION SELECT household_id FROM fresh)
)
"""

_BY_HOUSEHOLD = """
SELECT h.code, h.seq, h.head_name_masked AS head_name, v.code AS village_code,
       v.name AS village_name, per.accrued_fen, per.paid_fen, per.pending_fen,
       per.accrued_fen - per.paid_fen AS owed_fen, per.due_fen,
       max(per.due_fen - per.paid_fen, 0) AS overdue_fen, per.last_paid_at
FROM per JOIN households h ON h.id = per.household_id
JOIN villages v ON v.id = per.village_id
ORDER BY {order} LIMIT :limit"""

_VILLAGE_TOTALS = """
SELECT village_id, count(*) AS payees, sum(accrued_fen) AS accrued_fen,
       sum(paid_fen) AS paid_fen, sum(pending_fen) AS pending_fen,
       sum(accrued_fen - paid_fen) AS owed_fen, sum(accrued_fen > paid_fen) AS owing
FROM payout_balances WHERE county_id = :county GROUP BY village_id"""

_VILLAGE_NOT_YET_DUE = """
SELECT b.village_id, sum(r.fen) AS recent_fen,
       sum(min(b.accrued_fen - b.paid_fen, r.fen)) AS owed_not_due_fen,
       sum(b.accrued_fen > b.paid_fen AND b.accrued_fen - b.paid_fen <= r.fen) AS owing_not_due
FROM recent r JOIN payout_balances b ON b.household_id = r.household_id
GROUP BY b.village_id"""


def _recent(scope: str) -> str:
    """The households' accruals not yet due, read by the index on the scope and day (the
    planner otherwise likes to walk every accrual in household order to skip a sort)."""
    index = {
        "county_id = :county": "INDEXED BY accruals_county_day",
        "village_id = :village": "INDEXED BY accruals_village",
        "household_id = :household": "INDEXED BY accruals_household",
    }[scope]
    return _RECENT.format(scope=scope, index=index)


def _scope(village_id: int | None, household_id: int | None) -> tuple[str, str]:
    """(the accruals' filter, the balances' filter) for a household, village or county."""
    if household_id is not None:
        return "household_id = :household", "b.household_id = :household"
    if village_id is not None:
        return "village_id = :village", "b.village_id = :village"
    return "county_id = :county", "b.county_id = :county"


def by_village(db: Database, county_id: int, today: str | None = None) -> dict[int, dict]:
    """Per village of the county: money figures summed over its households.

    overdue = Σ owed − Σ over households with accruals not yet due of min(owed, those)."""
    params = {"county": county_id, "due_before": due_before(today or units.today())}
    found = {row.pop("village_id"): row for row in db.query(_VILLAGE_TOTALS, params)}
    recent = _recent("county_id = :county") + _VILLAGE_NOT_YET_DUE
    for row in db.query(recent, params):
        entry = found[row["village_id"]]
        entry["recent_fen"] = row["recent_fen"]
        entry["owed_not_due_fen"] = row["owed_not_due_fen"]
        entry["owing_not_due"] = row["owing_not_due"]
    for entry in found.values():
        entry["due_fen"] = entry["accrued_fen"] - entry.pop("recent_fen", 0)
        entry["overdue_fen"] = entry["owed_fen"] - entry.pop("owed_not_due_fen", 0)
        entry["overdue_households"] = entry.pop("owing") - entry.pop("owing_not_due", 0)
    return found


def households(
    db: Database,
    county_id: int,
    *,
    village_id: int | None = None,
    household_id: int | None = None,
    today: str | None = None,
    order: str = "overdue",
    limit: int | None = 500,
) -> list[dict[str, Any]]:
    """Per household (with its code and village): money figures, worst first."""
    params = {
        "county": county_id,
        "village": village_id,
        "household": household_id,
        "due_before": due_before(today or units.today()),
        "limit": -1 if limit is None else limit,
    }
    orders = {
        "overdue": "overdue_fen DESC, owed_fen DESC, h.code",
        "code": "h.code",
    }
    accruals_scope, balances_scope = _scope(village_id, household_id)
    recent = _recent(accruals_scope)
    whole_county = village_id is None and household_id is None
    if whole_county and order == "overdue" and limit is not None:
        per = _WORST
    else:
        per = _PER_HOUSEHOLD.format(where=balances_scope)
    sql = recent + per + _BY_HOUSEHOLD.format(order=orders[order])
    rows = list(db.query(sql, params))
    for row in rows:
        row["arrival"] = arrival(row)
    return rows


# Paid fen per (database, county, Beijing day) for days that can no longer change: a paid
# transfer is final and stamped with the time it was recorded, so once a day is over (with a
# day's margin) its total is fixed. Saves re-reading a month of transfers on every refresh.
_CLOSED_DAYS: dict[tuple[str, int, str], int] = {}


def _paid_by_day(db: Database, county_id: int, since_day: str) -> dict[str, int]:
    """Paid fen per Beijing day (by the time the transfer was recorded), from `since_day`."""
    since = f"{(date.fromisoformat(since_day) - timedelta(days=1)).isoformat()}T16:00:00"
    paid: dict[str, int] = {}
    for hour, fen in db.execute(  # by UTC hour (cheaper than date() per row), then days
        """SELECT substr(recorded_at, 1, 13) AS hour, sum(amount_fen) FROM settlements
           WHERE county_id = ? AND status = 'paid' AND recorded_at >= ? GROUP BY hour""",
        [county_id, since],
    ):
        day = units.beijing_date(hour + ":00:00").isoformat()
        paid[day] = paid.get(day, 0) + fen
    return paid


def by_day(db: Database, county_id: int, days: list[str]) -> list[dict[str, Any]]:
    """Accrued (by sale day) and paid (by Beijing day the transfer was recorded) per day."""
    accrued = dict(
        db.execute(
            """SELECT paid_on, sum(households_fen) FROM sale_splits
               WHERE county_id = ? AND paid_on >= ? GROUP BY paid_on""",
            [county_id, days[0]],
        ).fetchall()
    )
    database = db.execute("PRAGMA database_list").fetchone()[2]
    closed_before = (date.fromisoformat(units.today()) - timedelta(days=1)).isoformat()
    closed = [day for day in days if day < closed_before]
    if any((database, county_id, day) not in _CLOSED_DAYS for day in closed):
        found = _paid_by_day(db, county_id, days[0])
        for day in closed:
            _CLOSED_DAYS[(database, county_id, day)] = found.get(day, 0)
        paid = found
    else:
        paid = {day: _CLOSED_DAYS[(database, county_id, day)] for day in closed}
        paid |= _paid_by_day(db, county_id, closed_before)
    return [
        {"day": day, "accrued_fen": accrued.get(day) or 0, "paid_fen": paid.get(day) or 0}
        for day in days
    ]


def household_ledger(db: Database, household_id: int) -> dict[str, list[dict[str, Any]]]:
    """A household's accruals (with the sale each came from) and settlements, each with
    its chain outbox row (state, transaction, block)."""
    accruals = list(
        db.query(
            """SELECT a.id, a.order_id, a.grams, a.amount_fen, a.accrued_on, a.created_at,
                      o.public_id AS order_public_id, o.tonnes AS order_tonnes,
                      o.amount_fen AS order_amount_fen, o.buyer_kind, b.seq AS bundle_seq,
                      b.name AS bundle_name,
                      c.state AS chain_state, c.tx_hash, c.block_number
               FROM accruals a JOIN orders o ON o.id = a.order_id
               JOIN bundles b ON b.id = o.bundle_id
               LEFT JOIN chain_outbox c ON c.chain_key = 'accrue:accrual:' || a.id
               WHERE a.household_id = ? ORDER BY a.accrued_on DESC, a.id DESC""",
            [household_id],
        )
    )
    return {"accruals": accruals, "settlements": settlements_of(db, household_id)}


def settlements_of(db: Database, household_id: int) -> list[dict[str, Any]]:
    """A household's transfers, newest first, with batch day and chain row."""
    return list(
        db.query(
            """SELECT s.id, s.amount_fen, s.status, s.transfer_reference, s.failure_reason,
                      s.recorded_at, s.created_at, sb.settle_on,
                      c.state AS chain_state, c.tx_hash, c.block_number
               FROM settlements s JOIN settlement_batches sb ON sb.id = s.batch_id
               LEFT JOIN chain_outbox c ON c.chain_key = 'settle:settlement:' || s.id
               WHERE s.household_id = ? ORDER BY sb.settle_on DESC, s.id DESC""",
            [household_id],
        )
    )


def household_totals(db: Database, household_id: int, today: str | None = None) -> dict:
    """One household's accrued, paid, pending, owed and overdue fen."""
    row = next(
        iter(
            db.query("SELECT county_id FROM payout_balances WHERE household_id = ?", [household_id])
        ),
        None,
    )
    if row is None:
        return blank() | {"arrival": None}
    (found,) = households(
        db, row["county_id"], household_id=household_id, today=today or units.today()
    )
    return found
