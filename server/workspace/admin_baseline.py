"""Admin screen for baseline checks: which villages have registration readings no check
covers, a sample to draw and assign for each, checks in progress and their outcome
(server/registry/baseline.py)."""

from flask import Blueprint, g, request

from server import villages
from server.access import allow
from server.db import get_db
from server.registry import baseline
from server.workspace.common import attempt, back, page, whole

bp = Blueprint("workspace_baseline", __name__, url_prefix="/admin")

CHECKS = """SELECT b.*, v.name AS village_name, u.display_name AS verifier_name,
                   (SELECT count(*) FROM baseline_remeasurements r
                    WHERE r.check_id = b.id) AS remeasured
            FROM baseline_checks b JOIN villages v ON v.id = b.village_id
            JOIN users u ON u.id = b.verifier_id"""


@bp.get("/baseline")
@allow("admin")
def baseline_page():
    """Villages with unchecked registration readings, checks underway and decided."""
    db = get_db()
    waiting = []
    for village in db.query("SELECT * FROM villages ORDER BY code"):
        unchecked = len(baseline.unchecked_trees(db, village["id"]))
        if unchecked:
            waiting.append(village | {"unchecked": unchecked})
    verifiers = list(
        db.query(
            """SELECT u.id, u.display_name, c.name AS county_name FROM users u
               LEFT JOIN counties c ON c.id = u.county_id
               WHERE u.role = 'verifier' AND u.active ORDER BY u.id"""
        )
    )
    underway = list(db.query(CHECKS + " WHERE b.status = 'assigned' ORDER BY b.id"))
    decided = list(db.query(CHECKS + " WHERE b.status != 'assigned' ORDER BY b.id DESC LIMIT 100"))
    return page(
        "baseline.html",
        waiting=waiting,
        underway=underway,
        decided=decided,
        verifiers=verifiers,
    )


@bp.post("/villages/<village_code>/baseline-checks")
@allow("admin")
def assign(village_code: str):
    """Draw a sample of the village's unchecked registration readings for a verifier."""
    village = villages.get_village(village_code[:12])
    verifier_id = whole(request.form.get("verifier_id"))
    if village is None or verifier_id is None:
        return back("/admin/baseline", error="请选择村庄和核查员。")
    return attempt(
        "/admin/baseline",
        f"已为{village['name']}抽取基线复核样本并指派核查员。",
        lambda: baseline.assign(get_db(), village, verifier_id, g.user["id"]),
    )
