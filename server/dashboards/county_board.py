"""The county agriculture bureau's dashboard (PC web, Chinese): owed, paid, overdue and
arrival rate by village and household, live over Socket.IO, with charts, drill-down to
sales, accruals and chain transactions, CSV/XLSX export and the chain's status."""

from typing import Any

from flask import Blueprint, Response, g, jsonify, render_template, request

from server import units
from server.access import allow
from server.dashboards import charts, exports, figures, money
from server.db import first, get_db
from server.errors import ApiError
from server.live import WATCHERS
from server.workspace.nav import routed

bp = Blueprint("bureau", __name__)


def county_for_request() -> dict[str, Any]:
    """A bureau user's own county; admins and finance choose one with `?county=<code>`."""
    db = get_db()
    if g.user["role"] == "bureau":
        found = first(db, "SELECT * FROM counties WHERE id = ?", [g.user["county_id"]])
    elif request.args.get("county"):
        found = first(db, "SELECT * FROM counties WHERE code = ?", [request.args["county"][:6]])
    else:
        found = first(db, "SELECT * FROM counties ORDER BY code LIMIT 1")
    if found is None:
        raise ApiError(404, "not_found", "No such county.")
    return found


def _charts(summary: dict[str, Any]) -> dict[str, Any]:
    sales_days = summary["sales_by_day"]
    pay_days = summary["payouts_by_day"]
    labels = [d["day"][5:] for d in sales_days]
    villages = summary["villages"]
    return {
        "sales": charts.bars(
            labels,
            [("售出吨数", [d["tonnes"] for d in sales_days])],
            title="近 30 天每日售出吨数",
            unit="吨",
            label_every=5,
        ),
        "payouts": charts.bars(
            labels,
            [
                ("应付农户", [d["accrued_fen"] / 100 for d in pay_days]),
                ("已到账", [d["paid_fen"] / 100 for d in pay_days]),
            ],
            title="近 30 天每日农户应得与到账（元）",
            unit="元",
            label_every=5,
        ),
        "villages": charts.bars(
            [v["name"] for v in villages],
            [
                ("已到账", [v["paid_fen"] / 100 for v in villages]),
                ("待付", [max(v["owed_fen"] - v["overdue_fen"], 0) / 100 for v in villages]),
                ("逾期", [v["overdue_fen"] / 100 for v in villages]),
            ],
            title="各村农户分成：已到账、待付、逾期（元）",
            unit="元",
            width=1280,
        ),
    }


def _live_context(county: dict[str, Any]) -> dict[str, Any]:
    db = get_db()
    summary = figures.county_summary(db, county["id"])
    return {
        "s": summary,
        "charts": _charts(summary),
        "chain": figures.chain_summary(db),
        "worst": money.households(db, county["id"], limit=20),
        "query": f"?county={county['code']}" if g.user["role"] != "bureau" else "",
    }


@bp.get("/bureau")
@allow(*WATCHERS)
def dashboard():
    """The bureau dashboard of a county: money by village and household, live."""
    county = county_for_request()
    counties = []
    if g.user["role"] != "bureau":
        counties = list(get_db().query("SELECT code, name FROM counties ORDER BY code"))
    return render_template(
        "dashboards/bureau.html",
        user=g.user,
        counties=counties,
        todo=bureau_todo(county),
        **_live_context(county),
    )


@bp.get("/bureau/live")
@allow(*WATCHERS)
def live_fragment():
    """The dashboard's figures, tables and charts as an HTML fragment (the page's script
    swaps it in when a live event arrives)."""
    county = county_for_request()
    response = Response(render_template("dashboards/_live.html", **_live_context(county)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/v1/dashboard")
@allow(*WATCHERS)
def summary_api():
    """A county's dashboard figures as JSON (bureau: its own county; others `?county=`)."""
    county = county_for_request()
    db = get_db()
    return jsonify(figures.county_summary(db, county["id"]) | {"chain": figures.chain_summary(db)})


@bp.get("/bureau/sales")
@allow(*WATCHERS)
def sales_page():
    """Drill-down: the county's paid sales, newest first."""
    county = county_for_request()
    db = get_db()
    return render_template(
        "dashboards/sales.html",
        user=g.user,
        county=county,
        village=None,
        sales=figures.sales(db, county["id"]),
    )


@bp.get("/bureau/households")
@allow(*WATCHERS)
def households_page():
    """Drill-down: the county's households worst first (`?only=overdue` for the late ones);
    the first 1,000 — the export has them all."""
    county = county_for_request()
    rows = money.households(get_db(), county["id"], limit=1000)
    only_overdue = request.args.get("only") == "overdue"
    if only_overdue:
        rows = [row for row in rows if row["overdue_fen"] > 0]
    return render_template(
        "dashboards/households.html",
        user=g.user,
        county=county,
        households=rows,
        only_overdue=only_overdue,
        query=f"?county={county['code']}" if g.user["role"] != "bureau" else "",
    )


@bp.get("/bureau/villages/<village_code>")
@allow(*WATCHERS, scope="village")
def village_page(village_code: str):
    """Drill-down: one village's households (money), its sales and figures."""
    db = get_db()
    village = g.village
    county = first(db, "SELECT * FROM counties WHERE id = ?", [village["county_id"]])
    registry = figures.registry_by_village(db, county["id"], village["id"])[village["id"]]
    rows = money.households(db, county["id"], village_id=village["id"], limit=None)
    payouts = money.add_up(rows) | {
        "payees": len(rows),
        "overdue_households": sum(1 for row in rows if row["overdue_fen"] > 0),
    }
    return render_template(
        "dashboards/bureau_village.html",
        user=g.user,
        county=county,
        village=village,
        f=registry | payouts | {"arrival": money.arrival(payouts)},
        households=rows,
        sales=figures.sales(db, county["id"], village_id=village["id"]),
    )


@bp.get("/bureau/households/<household_code>")
@allow(*WATCHERS, scope="household")
def household_page(household_code: str):
    """Drill-down: one household's accruals (with their sales), transfers and chain rows."""
    db = get_db()
    household = g.household
    return render_template(
        "dashboards/bureau_household.html",
        user=g.user,
        village=g.village,
        h=household,
        totals=money.household_totals(db, household["id"]),
        issued_g=figures.household_issued_g(db, household["id"]),
        ledger=money.household_ledger(db, household["id"]),
    )


@bp.get("/bureau/export.<fmt>")
@allow(*WATCHERS)
def export(fmt: str):
    """The county's figures by village (`?level=village`) or household (`household`) as
    CSV or XLSX."""
    if fmt not in ("csv", "xlsx"):
        raise ApiError(404, "not_found", "Export as .csv or .xlsx.")
    level = request.args.get("level", "village")
    if level not in ("village", "household"):
        raise ApiError(422, "validation_failed", "level is village or household.")
    county = county_for_request()
    db = get_db()
    if level == "village":
        header, rows = exports.village_rows(figures.county_summary(db, county["id"]))
    else:
        header, rows = exports.household_rows(
            money.households(db, county["id"], order="code", limit=None)
        )
    today = units.today()
    name = f"sipang-{county['code']}-{level}-{today}"
    what = "各村" if level == "village" else "各户"
    title = f"{county['name']}{what}农户分成（截至 {units.day(today)}）"
    return exports.respond(fmt, name, header, rows, title=title)


def _count(sql: str, params: list) -> int:
    return get_db().execute(sql, params).fetchone()[0] or 0


def _todo_line(count: int, text: str, href: str, done: str) -> dict:
    """One line of the to-do list (workspace/_todo.html): `count` things waiting, or the
    all-done sentence; a link only where the page exists."""
    return {"count": count, "text": text if count else done, "href": href if routed(href) else None}


def bureau_todo(county: dict) -> list[dict]:
    """The bureau's to-do lines for its county: overdue money, flags, samples underway."""
    county_id = county["id"]
    overdue = _count(
        """SELECT count(DISTINCT s.household_id) FROM settlements s
           WHERE s.county_id = ? AND s.status = 'failed'""",
        [county_id],
    )
    return [
        _todo_line(
            overdue,
            "户转账失败，等待重新支付",
            "/bureau/households?only=overdue",
            "没有转账失败的农户",
        ),
        _todo_line(
            _count(
                """SELECT count(*) FROM flags f JOIN villages v ON v.id = f.village_id
                   WHERE v.county_id = ? AND f.decision IS NULL""",
                [county_id],
            ),
            "条存疑记录待复核",
            "/bureau/progress",
            "没有待复核的记录",
        ),
        _todo_line(
            _count(
                """SELECT count(*) FROM verifications vr JOIN villages v ON v.id = vr.village_id
                   WHERE v.county_id = ? AND vr.status = 'assigned'""",
                [county_id],
            ),
            "个核查样本正在复测",
            "/bureau/progress",
            "没有进行中的核查",
        ),
    ]
