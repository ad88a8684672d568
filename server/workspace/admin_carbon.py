"""Admin screens for the carbon chain: flagged records to review (photo, history, map
point), credit calculations, verification (draw a sample, assign, progress, report) and
issuance of a verified period into a bundle."""

import inspect
import io

from flask import Blueprint, Response, g, request
from PIL import Image, ImageOps

from server import villages
from server.access import allow
from server.carbon import records
from server.db import first, get_db
from server.photos import blob_paths
from server.registry import bundles, issuance, verification
from server.tree_reasons import reason_zh
from server.workspace import geometry
from server.workspace.common import attempt, back, page, whole

bp = Blueprint("workspace_carbon", __name__, url_prefix="/admin")


@bp.get("/flags")
@allow("admin")
def flags():
    """Open plausibility flags, each with its photo, the tree's readings and a map point."""
    db = get_db()
    rows = list(
        db.query(
            """SELECT f.*, m.dbh_mm, m.height_cm, m.latitude, m.longitude, m.photo_sha256,
                      m.client_time, t.household_id, s.name_zh, h.code AS household_code,
                      t.status AS tree_status, t.status_changed_at, t.status_reason,
                      t.status_photo_sha256,
                      v.name AS village_name, v.latitude AS village_lat,
                      v.longitude AS village_lon
               FROM flags f JOIN measurements m ON m.id = f.measurement_id
               JOIN trees t ON t.id = f.tree_id JOIN species s ON s.id = t.species_id
               JOIN households h ON h.id = t.household_id JOIN villages v ON v.id = f.village_id
               WHERE f.decision IS NULL ORDER BY f.id LIMIT 100"""
        )
    )
    for row in rows:
        row["history"] = list(
            db.query(
                """SELECT id, dbh_mm, height_cm, client_time FROM measurements
                   WHERE tree_id = ? ORDER BY client_time""",
                [row["tree_id"]],
            )
        )
        row["status_reason_zh"] = reason_zh(row["status_reason"])
        row["point"] = geometry.point_near(
            row["village_lat"], row["village_lon"], row["latitude"], row["longitude"]
        )
    total = db.execute("SELECT count(*) FROM flags WHERE decision IS NULL").fetchone()[0]
    return page("flags.html", flags=rows, total=total)


@bp.post("/flags/<int:flag_id>")
@allow("admin")
def review_flag(flag_id: int):
    """Accept or reject a flagged record, with a note."""
    decision = request.form.get("decision")
    note = request.form.get("note", "").strip()[:500] or None
    if decision not in ("accepted", "rejected"):
        return back("/admin/flags", error="请选择接受或驳回。")
    word = "接受" if decision == "accepted" else "驳回"
    return attempt(
        "/admin/flags",
        f"已{word}这条记录。",
        lambda: records.review_flag(get_db(), flag_id, decision, note, g.user["id"]),
    )


@bp.get("/photos/<sha256>.jpg")
@allow("admin")
def photo(sha256: str):
    """A measurement photo for review, re-encoded small (no metadata); a placeholder while
    it is still uploading."""
    path = blob_paths(sha256)[0] if len(sha256) == 64 and sha256.isalnum() else None
    if path is None or not path.exists():
        return Response(geometry.PHOTO_MISSING_SVG, mimetype="image/svg+xml")
    try:
        with Image.open(path) as original:
            picture = ImageOps.exif_transpose(original).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return Response(geometry.PHOTO_MISSING_SVG, mimetype="image/svg+xml")
    picture.thumbnail((480, 480))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return Response(out.getvalue(), mimetype="image/jpeg", headers={"Cache-Control": "private"})


def _calculations(where: str = "1", params: list | None = None) -> list[dict]:
    return list(
        get_db().query(
            f"""SELECT c.*, vi.name AS village_name, vi.code AS village_code,
                       v.id AS verification_id, v.status AS verification_status,
                       v.sample_size, u.display_name AS verifier_name,
                       (SELECT count(DISTINCT r.tree_id) FROM remeasurements r
                        WHERE r.verification_id = v.id) AS remeasured,
                       i.id AS issuance_id
                FROM credit_calculations c JOIN villages vi ON vi.id = c.village_id
                LEFT JOIN verifications v ON v.calculation_id = c.id
                LEFT JOIN users u ON u.id = v.verifier_id
                LEFT JOIN issuances i ON i.calculation_id = c.id
                WHERE {where} ORDER BY c.id DESC LIMIT 200""",  # noqa: S608 - fixed clauses
            params or [],
        )
    )


@bp.get("/calculations")
@allow("admin")
def calculations():
    """Credit calculations of every village, and the form to calculate a period."""
    rows = _calculations()
    village_rows = list(get_db().query("SELECT code, name FROM villages ORDER BY code"))
    return page("calculations.html", calculations=rows, villages=village_rows)


@bp.post("/calculations")
@allow("admin")
def calculate():
    """Credit a village's period from measured growth."""
    village = villages.get_village(request.form.get("village", "")[:12])
    start, end = (request.form.get(key, "").strip()[:10] for key in ("period_start", "period_end"))
    if village is None or not start or not end:
        return back("/admin/calculations", error="请选择村庄并填写核算期起止日期。")
    extra = {"buffer_pct": None} if "buffer_pct" in _parameters() else {}
    return attempt(
        "/admin/calculations",
        f"已完成{village['name']}的碳汇核算。",
        lambda: records.calculate_credit(
            get_db(), village, start, end, user_id=g.user["id"], **extra
        ),
    )


def _parameters():
    return inspect.signature(records.calculate_credit).parameters


@bp.get("/verification")
@allow("admin")
def verification_page():
    """Periods waiting for a sample, samples in progress, decided ones with their report."""
    verifiers = list(
        get_db().query(
            """SELECT u.id, u.display_name, c.name AS county_name, u.county_id FROM users u
               LEFT JOIN counties c ON c.id = u.county_id
               WHERE u.role = 'verifier' AND u.active ORDER BY u.id"""
        )
    )
    return page(
        "verification.html",
        waiting=_calculations("c.status = 'draft' AND v.id IS NULL"),
        underway=_calculations("v.status = 'assigned'"),
        decided=_calculations("v.status IN ('passed', 'partial', 'failed')"),
        verifiers=verifiers,
    )


@bp.post("/calculations/<int:calculation_id>/verification")
@allow("admin")
def assign(calculation_id: int):
    """Draw the period's random sample and assign it to a verifier."""
    db = get_db()
    calc = first(db, "SELECT * FROM credit_calculations WHERE id = ?", [calculation_id])
    verifier_id = whole(request.form.get("verifier_id"))
    if calc is None or verifier_id is None:
        return back("/admin/verification", error="请选择核查员。")
    return attempt(
        "/admin/verification",
        "已抽取样本并指派核查员。",
        lambda: verification.assign(db, calc, verifier_id, g.user["id"]),
    )


@bp.get("/issuance")
@allow("admin")
def issuance_page():
    """Verified periods waiting for issuance, the bundles they may go into, and past
    issuances."""
    db = get_db()
    ready = _calculations("v.status IN ('passed', 'partial') AND c.status = 'draft'")
    open_bundles = list(
        db.query(
            """SELECT b.id, b.name, b.seq, b.version, b.status, b.vintage_from, b.vintage_to
               FROM bundles b WHERE b.status != 'superseded' ORDER BY b.id DESC"""
        )
    )
    issued = list(
        db.query(
            """SELECT i.*, b.name AS bundle_name, vi.name AS village_name FROM issuances i
               JOIN bundles b ON b.id = i.bundle_id
               JOIN credit_calculations c ON c.id = i.calculation_id
               JOIN villages vi ON vi.id = c.village_id ORDER BY i.id DESC LIMIT 100"""
        )
    )
    return page("issuance.html", ready=ready, bundles=open_bundles, issued=issued)


@bp.post("/verifications/<int:verification_id>/issuance")
@allow("admin")
def issue(verification_id: int):
    """Issue a verified period's whole tonnes into the chosen bundle, buffer withheld."""
    db = get_db()
    found = verification.get_verification(db, verification_id)
    bundle_id = whole(request.form.get("bundle_id"))
    bundle = bundles.get_bundle(db, bundle_id) if bundle_id else None
    if found is None or bundle is None:
        return back("/admin/issuance", error="请选择要签发进入的碳汇包。")
    return attempt(
        "/admin/issuance",
        f"已签发进入{bundle['name']}。",
        lambda: issuance.issue(db, found, bundle, g.user["id"]),
    )
