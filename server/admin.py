"""Admin pages in the browser: a village's roster upload and kit download."""

from flask import Blueprint, g, render_template, request

from server import kits, rosters
from server.access import allow
from server.db import get_db
from village_kits.roster import EXPORT_HEADERS

bp = Blueprint("admin", __name__, url_prefix="/admin")
# What the import report calls each field (the API keeps the field names).
FIELD_NAMES = EXPORT_HEADERS | {"(file)": "文件", "(header)": "表头", "file": "文件"}


def _page(report=None, problems=None, status: int = 200):
    households = (
        get_db()
        .execute("SELECT count(*) FROM households WHERE village_id = ?", [g.village["id"]])
        .fetchone()[0]
    )
    return render_template(
        "admin_village.html",
        village=g.village,
        households=households,
        report=report,
        problems=problems,
        field_names=FIELD_NAMES,
        user=g.user,
    ), status


@bp.get("/villages/<village_code>")
@allow("admin", scope="village")
def village(village_code: str):
    """A village's roster and kit page."""
    return _page()


@bp.post("/villages/<village_code>/roster")
@allow("admin", scope="village", max_body_setting="MAX_ROSTER_BYTES")
def upload_roster(village_code: str):
    """Import the uploaded roster; show the report or every problem."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page(
            problems=[{"row": 0, "field": "file", "problem": "请选择花名册文件"}], status=422
        )
    try:
        report = rosters.import_roster(
            get_db(), upload.read(), upload.filename, g.village, g.user["id"]
        )
    except rosters.RosterRejected as rejected:
        return _page(problems=rejected.problems, status=422)
    return _page(report=report)


@bp.post("/villages/<village_code>/kit")
@allow("admin", scope="village")
def download_kit(village_code: str):
    """Download the village's printable kit."""
    return kits.kit_download(request.form.get("tags"))
