"""The village public dashboard (农村专区): per village its trees, tonnes issued and sold
and the total paid to its households; a county index of its villages. Server-rendered,
no personal data, the same bytes for every visitor, cacheable (ETag, Last-Modified) so
the PWA can keep a copy for offline viewing."""

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, render_template, request

from server.access import PUBLIC, allow
from server.dashboards import figures
from server.db import first, get_db
from server.errors import ApiError

bp = Blueprint("village_public", __name__)
MAX_AGE = 300  # seconds a browser or the PWA may show its copy before asking again


def _paid_by_village(county_id: int, village_id: int | None = None) -> dict[int, dict]:
    if village_id:
        where, params = "village_id = ?", [village_id]
    else:
        where, params = "county_id = ?", [county_id]
    return {
        row["village_id"]: row
        for row in get_db().query(
            f"""SELECT village_id, count(*) AS payees, sum(accrued_fen) AS accrued_fen,
                       sum(paid_fen) AS paid_fen
                FROM payout_balances WHERE {where} GROUP BY village_id""",  # noqa: S608
            params,
        )
    }


def _last_modified(county_id: int, village_id: int | None) -> datetime | None:
    """The newest change the page shows: an issuance, a paid order, a transfer, a tree."""
    db = get_db()
    stamps = [
        first(
            db,
            """SELECT max(i.created_at) AS at FROM issuances i
               JOIN credit_calculations c ON c.id = i.calculation_id
               JOIN villages v ON v.id = c.village_id WHERE v.county_id = ?""",
            [county_id],
        )["at"],
        first(
            db,
            """SELECT max(o.paid_at) AS at FROM orders o JOIN bundles b ON b.id = o.bundle_id
               WHERE o.paid_at IS NOT NULL AND b.county_id = ?""",
            [county_id],
        )["at"],
        first(
            db,
            """SELECT max(recorded_at) AS at FROM settlements
               WHERE county_id = ? AND status = 'paid'""",
            [county_id],
        )["at"],
    ]
    if village_id is not None:
        stamps.append(
            first(
                db,
                """SELECT max(max(t.created_at, coalesce(t.status_changed_at, ''))) AS at
                   FROM households h JOIN trees t ON t.household_id = h.id
                   WHERE h.village_id = ?""",
                [village_id],
            )["at"]
        )
    known = [s for s in stamps if s]
    if not known:
        return None
    return datetime.fromisoformat(max(known).replace("Z", "+00:00"))


def _cacheable(body: str, county_id: int, village_id: int | None) -> Response:
    response = Response(body, mimetype="text/html")
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE
    response.add_etag()
    modified = _last_modified(county_id, village_id)
    if modified is not None and village_id is not None:
        response.last_modified = modified
    return response.make_conditional(request)


def _rows(county_id: int, village_id: int | None = None) -> list[dict[str, Any]]:
    db = get_db()
    registry = figures.registry_by_village(db, county_id, village_id)
    paid = _paid_by_village(county_id, village_id)
    sql = "SELECT id, code, name, township FROM villages WHERE "
    sql += "id = ?" if village_id else "county_id = ? ORDER BY code"
    rows = []
    for village in db.query(sql, [village_id or county_id]):
        money = paid.get(village["id"], {})
        rows.append(
            village
            | registry.get(village["id"], {})
            | {
                "payees": money.get("payees") or 0,
                "accrued_fen": money.get("accrued_fen") or 0,
                "paid_fen": money.get("paid_fen") or 0,
            }
        )
    return rows


@bp.get("/c/<county_code>")
@allow(PUBLIC)
def county_index(county_code: str):
    """农村专区: a county's villages with trees, tonnes issued and sold, paid to households."""
    county = first(get_db(), "SELECT * FROM counties WHERE code = ?", [county_code[:6]])
    if county is None:
        raise ApiError(404, "not_found", "没有这个县。")
    rows = _rows(county["id"])
    totals = {
        key: sum(r.get(key) or 0 for r in rows)
        for key in ("households", "trees", "issued_t", "sold_t", "paid_fen", "payees")
    }
    body = render_template(
        "dashboards/county_public.html", county=county, villages=rows, t=totals, user=None
    )
    return _cacheable(body, county["id"], None)


@bp.get("/v/<village_code>")
@allow(PUBLIC)
def village(village_code: str):
    """农村专区: one village's trees, tonnes issued and sold, and money paid to households."""
    found = first(get_db(), "SELECT * FROM villages WHERE code = ?", [village_code[:12]])
    if found is None:
        raise ApiError(404, "not_found", "没有这个村。")
    county = first(get_db(), "SELECT * FROM counties WHERE id = ?", [found["county_id"]])
    (row,) = _rows(county["id"], found["id"])
    body = render_template(
        "dashboards/village_public.html",
        county=county,
        v=row,
        sales=figures.sales(get_db(), county["id"], village_id=found["id"], limit=20),
        user=None,
    )
    return _cacheable(body, county["id"], found["id"])
