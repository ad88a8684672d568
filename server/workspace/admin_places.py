"""Admin screens for places and people: counties and villages, households (search, edit,
move to another village, mark moved away), measurers' phones (list, revoke, enrolment code)."""

from flask import Blueprint, g, request

from server import devices, household_moves, users, villages
from server.access import allow
from server.db import first, get_db
from server.errors import ApiError
from server.workspace import household_edits
from server.workspace.common import attempt, back, explain, page, whole

bp = Blueprint("workspace_places", __name__, url_prefix="/admin")


@bp.get("/villages")
@allow("admin")
def village_list():
    """Counties and their villages, with forms to add either."""
    db = get_db()
    counties = list(db.query("SELECT * FROM counties ORDER BY code"))
    rows = list(db.query(villages.VILLAGE_SUMMARY_SQL + " ORDER BY v.code"))
    return page("villages.html", counties=counties, villages=rows)


@bp.post("/counties")
@allow("admin")
def add_county():
    """Add a county (6-digit administrative code)."""
    code, name = request.form.get("code", "").strip(), request.form.get("name", "").strip()
    if not (len(code) == 6 and code.isdigit() and 0 < len(name) <= 100):
        return back("/admin/villages", error="请填写 6 位县级行政区划代码和县名。")
    return attempt(
        "/admin/villages", f"已添加{name}。", lambda: villages.create_county(get_db(), code, name)
    )


def _coordinate(text: str, limit: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if -limit <= value <= limit else None


@bp.post("/villages")
@allow("admin")
def add_village():
    """Add a village under its county (12-digit code), with its map point."""
    form = {key: request.form.get(key, "").strip() for key in ("code", "name", "township")}
    lat = _coordinate(request.form.get("latitude", ""), 90)
    lon = _coordinate(request.form.get("longitude", ""), 180)
    if not (len(form["code"]) == 12 and form["code"].isdigit() and 0 < len(form["name"]) <= 100):
        return back("/admin/villages", error="请填写 12 位村级代码和村名。")
    return attempt(
        "/admin/villages",
        f"已添加{form['name']}。",
        lambda: villages.create_village(
            get_db(), form["code"], form["name"], form["township"][:100] or None, lat, lon
        ),
    )


@bp.post("/villages/<village_code>/location")
@allow("admin", scope="village")
def village_location(village_code: str):
    """Set the village's map point (latitude and longitude of its centre)."""
    lat = _coordinate(request.form.get("latitude", ""), 90)
    lon = _coordinate(request.form.get("longitude", ""), 180)
    url = f"/admin/villages/{village_code}"
    if lat is None or lon is None:
        return back(url, error="请填写纬度（-90 至 90）和经度（-180 至 180）。")
    return attempt(
        url,
        "已更新地图位置。",
        lambda: household_edits.set_village_location(get_db(), g.village, lat, lon),
    )


@bp.get("/households")
@allow("admin")
def household_search():
    """Search households by code, masked name or village; the first 200 matches."""
    query = request.args.get("q", "").strip()[:40]
    village = request.args.get("village", "").strip()[:12]
    sql = """SELECT h.*, v.code AS village_code, v.name AS village_name,
                    (SELECT count(*) FROM trees t WHERE t.household_id = h.id) AS trees
             FROM households h JOIN villages v ON v.id = h.village_id WHERE 1"""
    params: list = []
    if query:
        sql += " AND (h.code LIKE ? OR h.head_name_masked LIKE ?)"
        params += [f"%{query.upper()}%", f"{query[:1]}%"]
    if village:
        sql += " AND v.code = ?"
        params.append(village)
    rows = list(get_db().query(sql + " ORDER BY h.code LIMIT 200", params))
    village_rows = list(get_db().query("SELECT code, name FROM villages ORDER BY code"))
    return page("households.html", rows=rows, q=query, village=village, villages=village_rows)


@bp.get("/households/<household_code>")
@allow("admin", scope="household")
def household_edit(household_code: str):
    """One household: masked details, trees, and the forms to correct or mark it moved."""
    db = get_db()
    trees = list(
        db.query(
            """SELECT t.*, s.name_zh, (SELECT count(*) FROM measurements m
                                       WHERE m.tree_id = t.id) AS measurements
               FROM trees t JOIN species s ON s.id = t.species_id
               WHERE t.household_id = ? ORDER BY t.created_at""",
            [g.household["id"]],
        )
    )
    neighbours = list(
        db.query(
            "SELECT code, name FROM villages WHERE county_id = ? AND id != ? ORDER BY code",
            [g.village["county_id"], g.village["id"]],
        )
    )
    return page(
        "household_edit.html",
        h=g.household,
        village=g.village,
        trees=trees,
        neighbours=neighbours,
        moves=household_moves.moves_of(db, g.household["id"]),
    )


def _move_target(household_code: str):
    """The village named by the move form, or a redirect back with why not."""
    target = villages.get_village(request.values.get("village", "").strip()[:12])
    if target is None:
        return None, back(f"/admin/households/{household_code}", error="请选择要迁入的村。")
    return target, None


@bp.get("/households/<household_code>/move")
@allow("admin", scope="household")
def household_move_confirm(household_code: str):
    """What a move would change, and what stops it, before the admin confirms."""
    target, refused = _move_target(household_code)
    if refused:
        return refused
    db = get_db()
    return page(
        "household_move.html",
        h=g.household,
        village=g.village,
        target=target,
        reason=request.args.get("reason", "").strip()[: household_moves.REASON_LIMIT],
        blockers=household_moves.blockers(db, g.household, target),
        trees=db.execute(
            "SELECT count(*) FROM trees WHERE household_id = ?", [g.household["id"]]
        ).fetchone()[0],
    )


@bp.post("/households/<household_code>/move")
@allow("admin", scope="household")
def household_move(household_code: str):
    """Move the household to another village of its county: a new code and plate."""
    target, refused = _move_target(household_code)
    if refused:
        return refused
    reason = request.form.get("reason", "")
    try:
        moved = household_moves.move_household(get_db(), g.household, target, reason, g.user["id"])
    except ApiError as problem:
        return back(f"/admin/households/{household_code}", error=explain(problem))
    return back(
        f"/admin/households/{moved['code']}",
        ok=f"已迁入{target['name']}，新户码 {moved['code']}：请打印新门牌，旧门牌已作废。",
    )


@bp.post("/households/<household_code>")
@allow("admin", scope="household")
def household_update(household_code: str):
    """Correct a household's name, phone or bank account (blank fields stay as they are)."""
    changes = {
        key: request.form.get(key, "").strip()
        for key in household_edits.EDITABLE
        if request.form.get(key, "").strip()
    }
    url = f"/admin/households/{household_code}"
    if not changes:
        return back(url, error="没有填写要修改的内容。")
    return attempt(
        url,
        "已保存修改。",
        lambda: household_edits.update_details(get_db(), g.household, changes),
    )


@bp.post("/households/<household_code>/left")
@allow("admin", scope="household")
def household_left(household_code: str):
    """Mark a household as moved away (it keeps what it is owed)."""
    reason = request.form.get("reason", "").strip() or "迁出"
    household_edits.mark_left(get_db(), g.household, reason)
    return back(f"/admin/households/{household_code}", ok="已标记为迁出。")


@bp.get("/phones")
@allow("admin")
def phones():
    """Measurers and their enrolled phones; revoke a phone or issue an enrolment code."""
    db = get_db()
    return page("phones.html", code=None, **_phone_lists(db))


def _phone_lists(db) -> dict:
    return {
        "devices": list(
            db.query(
                """SELECT d.*, v.name AS village_name, u.display_name FROM devices d
                   JOIN villages v ON v.id = d.village_id JOIN users u ON u.id = d.user_id
                   ORDER BY d.revoked_at IS NOT NULL, d.enrolled_at DESC"""
            )
        ),
        "measurers": list(
            db.query(
                """SELECT u.id, u.display_name, v.name AS village_name FROM users u
                   JOIN villages v ON v.id = u.village_id
                   WHERE u.role = 'measurer' AND u.active ORDER BY v.code, u.id"""
            )
        ),
    }


@bp.post("/phones/<device_id>/revoke")
@allow("admin")
def phone_revoke(device_id: str):
    """Revoke a phone: its token stops working at once."""
    return attempt(
        "/admin/phones", "已停用这部手机。", lambda: devices.revoke(get_db(), device_id[:64])
    )


@bp.post("/phones/codes")
@allow("admin")
def phone_code():
    """A one-time enrolment code for a measurer, shown once on this page."""
    db = get_db()
    measurer_id = whole(request.form.get("measurer_id"))
    measurer = users.get_user(measurer_id) if measurer_id else None
    if measurer is None or measurer["role"] != "measurer":
        return back("/admin/phones", error="请选择一位计量员。")
    try:
        made = devices.create_enrolment_code(db, measurer, g.user["id"])
    except ApiError as problem:
        return back("/admin/phones", error=explain(problem))
    village = first(db, "SELECT name FROM villages WHERE id = ?", [measurer["village_id"]])
    code = made | {"measurer": measurer["display_name"], "village": village["name"]}
    return page("phones.html", code=code, **_phone_lists(db))
