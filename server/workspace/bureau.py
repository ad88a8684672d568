"""The bureau's screens beside the dashboard: month-by-month trends (and their export),
measurement and verification progress per village, the villages on a map drawn from their
coordinates, and the ledger check as a button."""

from flask import Blueprint, current_app, g

from server.access import allow
from server.dashboards import exports
from server.dashboards.county_board import WATCHERS, county_for_request
from server.dashboards.figures import chain_summary
from server.db import get_db
from server.errors import ApiError
from server.workspace import geometry, ledger_check, trends
from server.workspace.common import page

bp = Blueprint("workspace_bureau", __name__, url_prefix="/bureau")


def _query(county: dict) -> str:
    return f"?county={county['code']}" if g.user["role"] != "bureau" else ""


@bp.get("/trends")
@allow(*WATCHERS)
def trend_page():
    """Month by month: trees measured, tonnes issued and sold, money owed and paid."""
    county = county_for_request()
    months = trends.monthly(get_db(), county["id"])
    return page("trends.html", county=county, months=months, query=_query(county))


@bp.get("/trends.<fmt>")
@allow(*WATCHERS)
def trend_export(fmt: str):
    """The monthly figures as XLSX (numbers as numbers, a title row) or CSV."""
    if fmt not in ("csv", "xlsx"):
        raise ApiError(404, "not_found", "只能导出 CSV 或 Excel。")
    county = county_for_request()
    header, rows, types = trends.export_rows(trends.monthly(get_db(), county["id"]))
    title = f"{county['name']}四旁碳汇月度趋势"
    name = f"sipang-{county['code']}-months"
    return exports.respond(fmt, name, header, rows, title=title, types=types)


@bp.get("/progress")
@allow(*WATCHERS)
def progress_page():
    """Per village: households, trees, trees measured this year, flags, verification."""
    county = county_for_request()
    rows = trends.progress(get_db(), county["id"])
    return page("progress.html", county=county, villages=rows, query=_query(county))


@bp.get("/map")
@allow(*WATCHERS)
def map_page():
    """The county's villages placed from their coordinates; each opens its households."""
    county = county_for_request()
    rows = trends.progress(get_db(), county["id"])
    placed, missing = geometry.place(rows)
    return page(
        "map.html",
        county=county,
        placed=placed,
        missing=missing,
        tiles=geometry.place_tiles(rows),
        query=_query(county),
    )


@bp.get("/ledger")
@allow(*WATCHERS)
def ledger_page():
    """The ledger check: what has reached the chain, and a button to compare."""
    return page("ledger.html", chain=chain_summary(get_db()), result=None)


@bp.post("/ledger")
@allow(*WATCHERS)
def ledger_run():
    """Compare the database with the ledger now and show the result."""
    result = ledger_check.run(get_db(), current_app.config["CODE_KEY"])
    return page("ledger.html", chain=chain_summary(get_db()), result=result)
