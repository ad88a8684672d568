"""The dashboards' figures: indexed SQL aggregates over the registry (issuance, sales) and
the payouts (accruals, settlements), per county, village and household. Read only.

Money is integer fen and carbon integer grams (tonnes are whole serials); days are Beijing
calendar days, as T+1 is counted.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from server import units
from server.chain.outbox import STATES, percentile
from server.dashboards import money

BEIJING_OFFSET = "+8 hours"  # SQLite date modifier for Beijing time


def days_back(days: int, now: datetime | None = None) -> list[str]:
    """The last `days` Beijing dates, oldest first, ending today."""
    today = datetime.fromisoformat(units.today(now))
    return [(today - timedelta(days=n)).date().isoformat() for n in range(days - 1, -1, -1)]


def county(db: Database, county_id: int) -> dict[str, Any] | None:
    return next(iter(db.query("SELECT * FROM counties WHERE id = ?", [county_id])), None)


def villages_of(db: Database, county_id: int) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT id, code, name, township FROM villages WHERE county_id = ? ORDER BY code",
            [county_id],
        )
    )


def registry_by_village(
    db: Database, county_id: int, village_id: int | None = None, *, trees: bool = True
) -> dict[int, dict[str, int]]:
    """Per village: households, live trees (unless `trees=False`: a county's 1M trees are
    the slowest count here), tonnes issued (and buffer), sold, cancelled for trees lost after
    crediting, sales in fen."""
    where, params = ("v.id = ?", [village_id]) if village_id else ("v.county_id = ?", [county_id])
    figures: dict[int, dict[str, int]] = {}
    blank = dict.fromkeys(
        (
            "households",
            "trees",
            "issued_t",
            "buffer_t",
            "sold_t",
            "sold_fen",
            "issued_g",
            "cancelled_t",
        ),
        0,
    )
    for row in db.query(f"SELECT v.id FROM villages v WHERE {where}", params):  # noqa: S608
        figures[row["id"]] = dict(blank)
    queries = {  # `where` is one of the two fixed clauses above
        "households": f"""SELECT h.village_id AS id, count(*) AS n FROM households h
                          JOIN villages v ON v.id = h.village_id WHERE {where}
                          GROUP BY h.village_id""",  # noqa: S608 - fixed clauses
        "trees": f"""SELECT h.village_id AS id, count(*) AS n FROM villages v
                     JOIN households h ON h.village_id = v.id
                     JOIN trees t ON t.household_id = h.id AND t.status = 'alive'
                     WHERE {where} GROUP BY h.village_id""",  # noqa: S608
        "issued_t": f"""SELECT c.village_id AS id, sum(i.tonnes) AS n,
                               sum(i.buffer_tonnes) AS buffer_t
                        FROM issuances i JOIN credit_calculations c ON c.id = i.calculation_id
                        JOIN villages v ON v.id = c.village_id WHERE {where}
                        GROUP BY c.village_id""",  # noqa: S608
        "sold_t": f"""SELECT c.village_id AS id, count(*) AS n, sum(o.price_fen) AS sold_fen
                      FROM issuances i JOIN credit_calculations c ON c.id = i.calculation_id
                      JOIN villages v ON v.id = c.village_id
                      JOIN tonnes t ON t.issuance_id = i.id AND t.status IN ('held', 'retired')
                      JOIN orders o ON o.id = t.order_id
                      WHERE {where} GROUP BY c.village_id""",  # noqa: S608
        "cancelled_t": f"""SELECT c.village_id AS id, count(*) AS n
                           FROM loss_cancellations lc JOIN tonnes t ON t.serial = lc.serial
                           JOIN issuances i ON i.id = t.issuance_id
                           JOIN credit_calculations c ON c.id = i.calculation_id
                           JOIN villages v ON v.id = c.village_id
                           WHERE {where} GROUP BY c.village_id""",  # noqa: S608
    }
    if not trees:
        del queries["trees"]
    for name, sql in queries.items():
        for row in db.query(sql, params):
            entry = figures.setdefault(row["id"], dict(blank))
            entry[name] = row["n"] or 0
            for extra in ("buffer_t", "sold_fen"):
                if extra in row:
                    entry[extra] = row[extra] or 0
    return figures


def sales_by_day(db: Database, county_id: int, days: int = 30) -> list[dict[str, Any]]:
    """Paid orders of the county's bundles per Beijing day, every day of the window."""
    window = days_back(days)
    since = (datetime.fromisoformat(window[0]) - timedelta(hours=8)).strftime("%Y-%m-%d")
    rows = {
        row["day"]: row
        for row in db.query(
            f"""SELECT date(o.paid_at, '{BEIJING_OFFSET}') AS day, count(*) AS orders,
                       sum(o.tonnes) AS tonnes, sum(o.amount_fen) AS amount_fen,
                       sum(o.farmers_fen) AS farmers_fen
                FROM orders o JOIN bundles b ON b.id = o.bundle_id
                WHERE o.paid_at >= ? AND b.county_id = ? GROUP BY day""",  # noqa: S608
            [since, county_id],
        )
    }
    blank = {"orders": 0, "tonnes": 0, "amount_fen": 0, "farmers_fen": 0}
    return [{"day": day} | {k: rows.get(day, {}).get(k) or 0 for k in blank} for day in window]


def sales_totals(db: Database, county_id: int) -> dict[str, int]:
    row = next(
        iter(
            db.query(
                """SELECT count(*) AS orders, coalesce(sum(o.tonnes), 0) AS tonnes,
                          coalesce(sum(o.amount_fen), 0) AS amount_fen,
                          coalesce(sum(o.farmers_fen), 0) AS farmers_fen
                   FROM orders o JOIN bundles b ON b.id = o.bundle_id
                   WHERE o.paid_at IS NOT NULL AND b.county_id = ?""",
                [county_id],
            )
        )
    )
    return dict(row)


def sales(
    db: Database, county_id: int, *, village_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Paid orders, newest first; with a village, those holding tonnes of its issuances
    (with how many of its tonnes each took)."""
    if village_id is None:
        return list(
            db.query(
                """SELECT o.id, o.public_id, o.paid_at, o.tonnes, o.amount_fen, o.farmers_fen,
                          o.buyer_kind, o.status, o.payment_method, b.seq AS bundle_seq,
                          b.name AS bundle_name, o.tonnes AS village_tonnes
                   FROM orders o JOIN bundles b ON b.id = o.bundle_id
                   WHERE o.paid_at IS NOT NULL AND b.county_id = ?
                   ORDER BY o.paid_at DESC, o.id DESC LIMIT ?""",
                [county_id, limit],
            )
        )
    return list(
        db.query(
            """SELECT o.id, o.public_id, o.paid_at, o.tonnes, o.amount_fen, o.farmers_fen,
                      o.buyer_kind, o.status, o.payment_method, b.seq AS bundle_seq,
                      b.name AS bundle_name, count(*) AS village_tonnes
               FROM credit_calculations c JOIN issuances i ON i.calculation_id = c.id
               JOIN tonnes t ON t.issuance_id = i.id AND t.status IN ('held', 'retired')
               JOIN orders o ON o.id = t.order_id JOIN bundles b ON b.id = o.bundle_id
               WHERE c.village_id = ? GROUP BY o.id
               ORDER BY o.paid_at DESC, o.id DESC LIMIT ?""",
            [village_id, limit],
        )
    )


def household_issued_g(db: Database, household_id: int) -> int:
    """Grams of issued tonnes a household holds in bundles (the registry's own shares)."""
    return db.execute(
        "SELECT coalesce(sum(grams), 0) FROM issuance_households WHERE household_id = ?",
        [household_id],
    ).fetchone()[0]


def county_summary(db: Database, county_id: int, days: int = 30) -> dict[str, Any]:
    """Everything the bureau dashboard shows for one county."""
    found = county(db, county_id)
    villages = villages_of(db, county_id)
    registry = registry_by_village(db, county_id, trees=False)
    payouts = money.by_village(db, county_id)
    rows = []
    for village in villages:
        figures = registry.get(village["id"], {}) | payouts.get(village["id"], money.blank())
        rows.append(village | figures | {"arrival": money.arrival(figures)})
    totals = money.add_up(payouts.values())
    totals |= {
        key: sum(r.get(key, 0) for r in rows)
        for key in ("households", "issued_t", "sold_t", "sold_fen", "cancelled_t")
    }
    totals["arrival"] = money.arrival(totals)
    return {
        "county": {"id": found["id"], "code": found["code"], "name": found["name"]},
        "as_of": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "today": units.today(),
        "totals": totals,
        "sales": sales_totals(db, county_id),
        "villages": rows,
        "sales_by_day": sales_by_day(db, county_id, days),
        "payouts_by_day": money.by_day(db, county_id, days_back(days)),
    }


def chain_summary(db: Database) -> dict[str, Any]:
    """The chain box of the bureau dashboard: what has not reached the ledger yet, by kind
    and state; the confirmed count; the last block; confirmation p50/p95 of the last
    1,000 rows. A lighter cousin of `GET /api/v1/chain/status`, which groups every outbox
    row by kind (≈200 ms at a million rows)."""
    counts = dict.fromkeys(STATES, 0)
    by_kind: dict[str, dict[str, int]] = {}
    for row in db.query(
        """SELECT kind, state, count(*) AS n FROM chain_outbox
           WHERE state IN ('pending', 'submitted', 'failed') GROUP BY kind, state"""
    ):
        counts[row["state"]] += row["n"]
        by_kind.setdefault(row["kind"], dict.fromkeys(STATES, 0))[row["state"]] = row["n"]
    counts["confirmed"] = db.execute(
        "SELECT count(*) FROM chain_outbox WHERE state = 'confirmed'"
    ).fetchone()[0]
    recent = [
        row[0]
        for row in db.execute(
            """SELECT confirm_ms FROM chain_outbox WHERE state = 'confirmed'
               AND confirm_ms IS NOT NULL ORDER BY id DESC LIMIT 1000"""
        )
    ]
    oldest = db.execute(  # by the state index: the planner otherwise walks the whole table
        """SELECT min(created_at) FROM chain_outbox INDEXED BY chain_outbox_state
           WHERE state IN ('pending', 'submitted')"""
    ).fetchone()[0]
    last_block = db.execute(
        "SELECT max(block_number) FROM chain_txs WHERE state = 'mined'"
    ).fetchone()[0]
    total = sum(counts.values())
    return {
        **counts,
        "total": total,
        "confirmed_ratio": round(counts["confirmed"] / total, 4) if total else None,
        "waiting_by_kind": by_kind,
        "oldest_waiting_at": oldest,
        "last_block": last_block,
        "confirmation_ms": {"p50": percentile(recent, 0.5), "p95": percentile(recent, 0.95)},
    }
