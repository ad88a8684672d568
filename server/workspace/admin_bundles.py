"""Admin screens for bundles (聚零为整): create with entry rules, preview who is in,
publish, and a new version when the rules change."""

import json
from typing import Any

from flask import Blueprint, g, redirect, request

from server.access import allow
from server.carbon.method import available_versions
from server.db import get_db
from server.errors import ApiError
from server.registry import bundles, serials
from server.workspace.common import attempt, back, explain, page, whole

bp = Blueprint("workspace_bundles", __name__, url_prefix="/admin/bundles")

NUMBER_FIELDS = {  # form field → (low, high)
    "vintage_from": (2000, 2100),
    "vintage_to": (2000, 2100),
    "min_households": (1, 100000),
    "max_household_share_pct": (1, 100),
    "households_pct": (60, 100),
    "collective_pct": (0, 40),
    "maintenance_pct": (0, 40),
}


def _rules_from_form(base: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The rules a form gives (fields left blank keep `base`), and what is wrong."""
    rules: dict[str, Any] = {}
    problems = []
    name = request.form.get("name", "").strip()
    if name:
        rules["name"] = name[:100]
    elif base is None:
        problems.append("名称")
    description = request.form.get("description", "").strip()
    if description:
        rules["description"] = description[:500]
    for field, (low, high) in NUMBER_FIELDS.items():
        text = request.form.get(field, "").strip()
        if not text:
            if base is None and field in ("vintage_from", "vintage_to"):
                problems.append("年份")
            continue
        value = whole(text, low, high)
        if value is None:
            problems.append(FIELD_NAMES[field])
        else:
            rules[field] = value
    price = request.form.get("price_yuan", "").strip()
    if price:
        value = whole(price, 1, 100000)
        if value is None:
            problems.append("每吨价格")
        else:
            rules["price_fen"] = value * 100
    methods = [m for m in request.form.getlist("methods") if m in available_versions()]
    if methods:
        rules["methods"] = methods
    elif base is None:
        problems.append("方法学版本")
    return rules, problems


FIELD_NAMES = {
    "vintage_from": "起始年份",
    "vintage_to": "截止年份",
    "min_households": "最少农户数",
    "max_household_share_pct": "单户最大占比",
    "households_pct": "农户分成",
    "collective_pct": "村集体分成",
    "maintenance_pct": "计量管护分成",
}


@bp.get("")
@allow("admin")
def bundle_list():
    """Every bundle version, newest first, with its tonnes."""
    db = get_db()
    rows = list(
        db.query(
            """SELECT b.*, c.name AS county_name FROM bundles b
               JOIN counties c ON c.id = b.county_id ORDER BY b.seq DESC, b.version DESC"""
        )
    )
    for row in rows:
        row["totals"] = serials.bundle_totals(db, row["id"])
    return page("bundles.html", bundles=rows)


@bp.get("/new")
@allow("admin")
def new_bundle():
    """The form for a new bundle's rules."""
    counties = list(get_db().query("SELECT code, name FROM counties ORDER BY code"))
    return page(
        "bundle_form.html",
        counties=counties,
        methods=available_versions(),
        defaults=bundles.DEFAULTS,
        bundle=None,
    )


@bp.post("")
@allow("admin")
def create():
    """Create a bundle (version 1) from the form's rules."""
    rules, problems = _rules_from_form()
    county = request.form.get("county", "")[:6]
    if problems or not county:
        return back("/admin/bundles/new", error="请检查：" + "、".join(problems or ["县"]))
    try:
        made = bundles.create_bundle(get_db(), county, rules, g.user["id"])
    except ApiError as problem:
        return back("/admin/bundles/new", error=explain(problem))
    return back(f"/admin/bundles/{made['id']}", ok="已创建碳汇包草稿。")


def _bundle(bundle_id: int) -> dict[str, Any]:
    found = bundles.get_bundle(get_db(), bundle_id)
    if found is None:
        raise ApiError(404, "not_found", "没有这个碳汇包。")
    return found


@bp.get("/<int:bundle_id>")
@allow("admin")
def preview(bundle_id: int):
    """A bundle's rules, its households and their shares, and whether it may go on sale."""
    db = get_db()
    bundle = _bundle(bundle_id)
    shares = bundles.household_shares(db, bundle_id)
    total = sum(shares.values())
    members = list(
        db.query(
            """SELECT h.id, h.code, h.head_name_masked, v.name AS village_name
               FROM households h JOIN villages v ON v.id = h.village_id
               WHERE h.id IN (SELECT value FROM json_each(?)) ORDER BY h.code""",
            [json.dumps(list(shares))],
        )
    )
    for row in members:
        row["grams"] = shares[row["id"]]
        row["share"] = shares[row["id"]] / total if total else None
    problem = bundles.share_problem(bundle, shares)
    return page(
        "bundle.html",
        b=bundle,
        methods=json.loads(bundle["methods"]),
        members=members,
        totals=serials.bundle_totals(db, bundle_id),
        problem=_problem_text(bundle, shares) if problem else None,
        available=available_versions(),
    )


def _problem_text(bundle: dict[str, Any], shares: dict[int, int]) -> str:
    if len(shares) < bundle["min_households"]:
        return f"至少需要 {bundle['min_households']} 户，现有 {len(shares)} 户。"
    return f"有一户的占比超过了 {bundle['max_household_share_pct']}%。"


@bp.post("/<int:bundle_id>/publish")
@allow("admin")
def publish(bundle_id: int):
    """Put the bundle on sale once its households meet its rules."""
    bundle = _bundle(bundle_id)
    return attempt(
        f"/admin/bundles/{bundle_id}",
        "已发布，开始出售。",
        lambda: bundles.publish(get_db(), bundle),
    )


@bp.post("/<int:bundle_id>/versions")
@allow("admin")
def new_version(bundle_id: int):
    """Changed rules make a new version; the old one stops taking issuances."""
    bundle = _bundle(bundle_id)
    rules, problems = _rules_from_form(base=bundle)
    url = f"/admin/bundles/{bundle_id}"
    if problems:
        return back(url, error="请检查：" + "、".join(problems))
    if not rules:
        return back(url, error="没有填写要修改的规则。")
    try:
        made = bundles.new_version(get_db(), bundle, rules, g.user["id"])
    except ApiError as problem:
        return back(url, error=explain(problem))
    return redirect(f"/admin/bundles/{made['id']}", code=303)
