"""The bureau's month-by-month figures and per-village progress (read only; Beijing months)."""

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from server import units


def last_months(count: int = 12, now: datetime | None = None) -> list[str]:
    """The last `count` Beijing months, oldest first, ending with this one."""
    year, month = (int(part) for part in units.today(now).split("-")[:2])
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def _by_month(db: Database, sql: str, county_id: int, since: str) -> dict[str, tuple]:
    return {row[0]: tuple(row[1:]) for row in db.execute(sql, [county_id, since])}


def monthly(db: Database, county_id: int, count: int = 12) -> list[dict[str, Any]]:
    """Trees measured, tonnes issued, tonnes sold and their price, farmers' money accrued and
    paid, for each of the last `count` months."""
    months = last_months(count)
    since = months[0]
    measured = _by_month(
        db,
        """SELECT substr(datetime(m.client_time, '+8 hours'), 1, 7) AS month,
                  count(DISTINCT m.tree_id)
            FROM measurements m JOIN trees t ON t.id = m.tree_id
            JOIN households h ON h.id = t.household_id JOIN villages v ON v.id = h.village_id
            WHERE v.county_id = ? AND month >= ? GROUP BY month""",
        county_id,
        since,
    )
    issued = _by_month(
        db,
        """SELECT substr(datetime(i.created_at, '+8 hours'), 1, 7) AS month, sum(i.tonnes)
            FROM issuances i JOIN bundles b ON b.id = i.bundle_id
            WHERE b.county_id = ? AND month >= ? GROUP BY month""",
        county_id,
        since,
    )
    sold = _by_month(
        db,
        """SELECT substr(datetime(o.paid_at, '+8 hours'), 1, 7) AS month,
                  sum(o.tonnes), sum(o.amount_fen)
            FROM orders o JOIN bundles b ON b.id = o.bundle_id
            WHERE b.county_id = ? AND o.paid_at IS NOT NULL AND month >= ? GROUP BY month""",
        county_id,
        since,
    )
    accrued = _by_month(
        db,
        """SELECT substr(accrued_on, 1, 7) AS month, sum(amount_fen) FROM accruals
           WHERE county_id = ? AND month >= ? GROUP BY month""",
        county_id,
        since,
    )
    paid = _by_month(
        db,
        """SELECT substr(datetime(recorded_at, '+8 hours'), 1, 7) AS month,
                  sum(amount_fen) FROM settlements
            WHERE county_id = ? AND status = 'paid' AND month >= ? GROUP BY month""",
        county_id,
        since,
    )
    return [
        {
            "month": month,
            "trees_measured": measured.get(month, (0,))[0],
            "issued_t": issued.get(month, (0,))[0] or 0,
            "sold_t": sold.get(month, (0, 0))[0] or 0,
            "sold_fen": sold.get(month, (0, 0))[1] or 0,
            "accrued_fen": accrued.get(month, (0,))[0] or 0,
            "paid_fen": paid.get(month, (0,))[0] or 0,
        }
        for month in months
    ]


EXPORT_COLUMNS = [  # (header with unit, key, kind)
    ("月份", "month", "month"),
    ("复测树木（棵）", "trees_measured", "int"),
    ("签发（吨）", "issued_t", "int"),
    ("售出（吨）", "sold_t", "int"),
    ("销售额（元）", "sold_fen", "yuan"),
    ("农户应得（元）", "accrued_fen", "yuan"),
    ("农户到账（元）", "paid_fen", "yuan"),
]


def export_rows(months: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]], list[str]]:
    """Header, rows and column kinds of the monthly figures (money as exact yuan numbers,
    the month as the first day of the month)."""
    from datetime import date

    rows = []
    for m in months:
        row: list[Any] = []
        for _, key, kind in EXPORT_COLUMNS:
            value = m[key]
            if kind == "yuan":
                value = units.yuan_number(value)
            elif kind == "month":
                value = date(int(value[:4]), int(value[5:7]), 1)
            row.append(value)
        rows.append(row)
    return [c[0] for c in EXPORT_COLUMNS], rows, [c[2] for c in EXPORT_COLUMNS]


def progress(db: Database, county_id: int) -> list[dict[str, Any]]:
    """Each village of the county: households, trees, trees measured this year (Beijing),
    open flags, and its latest period's calculation and verification."""
    year = last_months(1)[0][:4]
    rows = list(
        db.query(
            """SELECT v.id, v.code, v.name, v.township, v.latitude, v.longitude,
                  (SELECT count(*) FROM households h WHERE h.village_id = v.id) AS households,
                  (SELECT count(*) FROM trees t JOIN households h ON h.id = t.household_id
                   WHERE h.village_id = v.id) AS trees,
                  (SELECT count(DISTINCT m.tree_id) FROM measurements m
                   JOIN trees t ON t.id = m.tree_id JOIN households h ON h.id = t.household_id
                   WHERE h.village_id = v.id
                     AND substr(datetime(m.client_time, '+8 hours'), 1, 4) = :year)
                   AS measured,
                  (SELECT count(*) FROM flags f WHERE f.village_id = v.id
                   AND f.decision IS NULL) AS open_flags
                FROM villages v WHERE v.county_id = :county ORDER BY v.code""",
            {"county": county_id, "year": year},
        )
    )
    for row in rows:
        latest = next(
            db.query(
                """SELECT c.id, c.period_start, c.period_end, c.status, c.tonnes,
                          vr.status AS verification_status, vr.sample_size,
                          (SELECT count(DISTINCT r.tree_id) FROM remeasurements r
                           WHERE r.verification_id = vr.id) AS remeasured
                   FROM credit_calculations c
                   LEFT JOIN verifications vr ON vr.calculation_id = c.id
                   WHERE c.village_id = ? AND c.status != 'void'
                   ORDER BY c.period_end DESC, c.id DESC LIMIT 1""",
                [row["id"]],
            ),
            None,
        )
        row["latest"] = latest
        row["measured_share"] = row["measured"] / row["trees"] if row["trees"] else None
    return rows
