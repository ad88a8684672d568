"""Village kits: the printable PDF of door plates, tree tags and a measurer's enrolment code."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from sqlite_utils import Database

from server import audit, devices, units
from server.access import allow
from server.clock import now_iso
from server.db import first, get_db, transaction
from server.errors import ApiError
from village_kits import codes
from village_kits.kit import Enrolment, Plate, Tag, VillageKit, build_kit
from village_kits.qr import QrTooLarge

MAX_TAGS = 2000


def _reserve_tags(db: Database, village: dict[str, Any], count: int) -> list[str]:
    """The next `count` tag numbers of the village, recorded so a reprint never repeats them."""
    if count == 0:
        return []
    last = db.execute(
        "SELECT coalesce(max(last_number), 0) FROM tree_tag_batches WHERE village_id = ?",
        [village["id"]],
    ).fetchone()[0]
    db["tree_tag_batches"].insert(
        {
            "village_id": village["id"],
            "first_number": last + 1,
            "last_number": last + count,
            "printed_at": now_iso(),
        }
    )
    return [codes.make_tag(village["code"], number) for number in range(last + 1, last + count + 1)]


def _enrolment(
    db: Database, village: dict[str, Any], base_url: str, admin_id: int
) -> Enrolment | None:
    measurer = first(
        db,
        """SELECT * FROM users WHERE role = 'measurer' AND active = 1
                            AND village_id = ? ORDER BY id LIMIT 1""",
        [village["id"]],
    )
    if measurer is None:
        return None
    made = devices.create_enrolment_code(db, measurer, admin_id)
    url = f"{base_url.rstrip('/')}/E/{made['code'].replace('-', '')}".upper()
    expires = units.when(made["expires_at"]) + "（北京时间）"
    return Enrolment(measurer["display_name"], made["code"], url, expires)


def make_kit(db: Database, village: dict[str, Any], *, tags: int, user_id: int) -> bytes:
    """Build a village's kit: every current plate, `tags` new tree tags, a fresh enrolment code."""
    if not 0 <= tags <= MAX_TAGS:
        raise ApiError(
            422,
            "validation_failed",
            f"Print 0–{MAX_TAGS} tree tags at a time.",
            [{"field": "tags", "problem": f"between 0 and {MAX_TAGS}"}],
        )
    base = current_app.config["PUBLIC_BASE_URL"]
    county = db["counties"].get(village["county_id"])
    plates = [
        Plate(row["seq"], row["code"], codes.plate_url(base, row["code"]))
        for row in db.query(
            "SELECT seq, code FROM households WHERE village_id = ? "
            "AND status = 'active' ORDER BY seq",
            [village["id"]],
        )
    ]
    with transaction(db):
        tag_ids = _reserve_tags(db, village, tags)
        enrolment = _enrolment(db, village, base, user_id)
        kit = VillageKit(
            county["name"],
            village["name"],
            village["code"],
            plates,
            [Tag(tag, codes.tag_url(base, tag)) for tag in tag_ids],
            enrolment,
            units.beijing(datetime.now(UTC)),
        )
        try:
            pdf = build_kit(kit)
        except QrTooLarge as error:
            raise ApiError(422, "address_too_long", str(error)) from error
        audit.record(
            db,
            "kit.built",
            f"village:{village['code']}",
            {"plates": len(plates), "tags": len(tag_ids), "enrolment": enrolment is not None},
        )
    return pdf


bp = Blueprint("kits", __name__, url_prefix="/api/v1")


def kit_download(tags_text: str | None) -> Response:
    """The current village's kit as a PDF attachment, `tags_text` new tags (default 40)."""
    try:
        tags = int(tags_text or 40)
    except ValueError as error:
        raise ApiError(
            422,
            "validation_failed",
            "tags is a whole number.",
            [{"field": "tags", "problem": "a whole number"}],
        ) from error
    pdf = make_kit(get_db(), g.village, tags=tags, user_id=g.user["id"])
    filename = f"sipang-kit-{g.village['code']}.pdf"
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/villages/<village_code>/kits")
@allow("admin", scope="village")
def download_kit(village_code: str):
    """Build the village's printable kit (PDF); `?tags=N` new tree tags (default 40)."""
    return kit_download(request.args.get("tags"))
