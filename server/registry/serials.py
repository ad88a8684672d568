"""Tonne serials: `SP-<county 6>-<bundle seq 4>-<vintage>-<tonne seq 6>`, one row per tonne.

The database refuses overlaps (unique serial and (series, seq)), illegal status moves and a
second retirement (triggers in migration 0005); this module only asks for legal ones.
"""

from typing import Any

from sqlite_utils import Database

PROGRAMME = "SP"
STATUSES = ("available", "reserved", "held", "retired", "buffer", "cancelled")


def series(county_code: str, bundle_seq: int, vintage: int) -> str:
    """The serial prefix shared by a bundle's tonnes of one vintage."""
    return f"{PROGRAMME}-{county_code}-{bundle_seq:04d}-{vintage:04d}"


def serial(series_text: str, seq: int) -> str:
    return f"{series_text}-{seq:06d}"


def mint(
    db: Database,
    *,
    bundle: dict[str, Any],
    county_code: str,
    vintage: int,
    issuance_id: int,
    tonnes: int,
    buffer_tonnes: int,
) -> tuple[str | None, str | None]:
    """Create `tonnes` new serials after the last of their series; the last
    `buffer_tonnes` of them go to the unsellable buffer. Returns (first, last) serial."""
    if tonnes == 0:
        return None, None
    prefix = series(county_code, bundle["seq"], vintage)
    last = db.execute("SELECT coalesce(max(seq), 0) FROM tonnes WHERE series = ?", [prefix])
    start = last.fetchone()[0] + 1
    rows = []
    for offset in range(tonnes):
        is_buffer = offset >= tonnes - buffer_tonnes
        rows.append(
            (
                serial(prefix, start + offset),
                prefix,
                start + offset,
                bundle["id"],
                vintage,
                issuance_id,
                int(is_buffer),
                "buffer" if is_buffer else "available",
            )
        )
    db.conn.executemany(
        """INSERT INTO tonnes (serial, series, seq, bundle_id, vintage, issuance_id, buffer,
                               status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    return rows[0][0], rows[-1][0]


def next_for_sale(db: Database, bundle_id: int, count: int) -> list[str]:
    """The next `count` available serials in the fixed public order: oldest vintage first,
    then lowest serial."""
    return [
        row[0]
        for row in db.execute(
            """SELECT serial FROM tonnes WHERE bundle_id = ? AND status = 'available'
               ORDER BY vintage, seq LIMIT ?""",
            [bundle_id, count],
        )
    ]


def set_status(db: Database, serials: list[str], status: str, **columns: Any) -> None:
    """Move serials to a status (the database checks the move is legal)."""
    assignments = ", ".join(f"{name} = ?" for name in ("status", *columns))
    values = [status, *columns.values()]
    db.conn.executemany(
        f"UPDATE tonnes SET {assignments} WHERE serial = ?",  # noqa: S608 - names from code
        [(*values, s) for s in serials],
    )


def counts(
    db: Database, bundle_id: int | None = None, county_id: int | None = None
) -> list[dict[str, Any]]:
    """Tonnes by bundle and vintage in each status, and the total issued (of one bundle, or
    of one county's bundles)."""
    where, params = ("WHERE bundle_id = ?", [bundle_id]) if bundle_id is not None else ("", [])
    if county_id is not None:
        where = "WHERE bundle_id IN (SELECT id FROM bundles WHERE county_id = ?)"
        params = [county_id]
    rows = db.query(
        f"""SELECT bundle_id, vintage, count(*) AS issued,
                  sum(status = 'available') AS available, sum(status = 'reserved') AS reserved,
                  sum(status = 'held') AS held, sum(status = 'retired') AS retired,
                  sum(status = 'buffer') AS buffer, sum(status = 'cancelled') AS cancelled
           FROM tonnes {where} GROUP BY bundle_id, vintage ORDER BY bundle_id, vintage""",  # noqa: S608
        params,
    )
    return list(rows)


def ranges(serials: list[str]) -> list[str]:
    """Consecutive serials written as `first…last` ranges (for certificates and pages)."""
    out: list[list[str]] = []
    for text in sorted(serials):
        prefix, seq = text.rsplit("-", 1)
        if out and out[-1][0] == prefix and int(out[-1][2]) + 1 == int(seq):
            out[-1][2] = seq
        else:
            out.append([prefix, seq, seq])
    return [f"{p}-{a}" if a == b else f"{p}-{a}…{b}" for p, a, b in out]


def bundle_totals(db: Database, bundle_id: int) -> dict[str, int]:
    """One bundle's tonnes in each status, all vintages together."""
    total = {key: 0 for key in ("issued", *STATUSES)}
    for row in counts(db, bundle_id):
        for key in total:
            total[key] += row[key] or 0
    return total
