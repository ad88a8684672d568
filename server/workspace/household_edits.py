"""Staff corrections: a household's personal details or its moving away (personal data stays
encrypted; the audit names fields, never values), and a village's map point."""

from typing import Any

from sqlite_utils import Database

from server import audit, households
from server.clock import now_iso
from server.db import first, transaction
from server.errors import ApiError
from village_kits.personal_data import normalise_digits

EDITABLE = ("head_name", "phone", "bank_account")


def update_details(
    db: Database, household: dict[str, Any], changes: dict[str, str | None]
) -> dict[str, Any]:
    """Replace the given personal fields (blank clears phone or bank account)."""
    changes = {key: value for key, value in changes.items() if key in EDITABLE}
    if "head_name" in changes and not (changes["head_name"] or "").strip():
        raise ApiError(
            422,
            "validation_failed",
            "户主姓名不能为空。",
            [{"field": "head_name", "problem": "required"}],
        )
    cleaned = {
        key: (normalise_digits(value) if key != "head_name" else value.strip()) or None
        for key, value in changes.items()
        if value is not None
    }
    problems = households.check_personal_data(cleaned)
    if problems:
        raise ApiError(422, "validation_failed", "个人信息校验未通过。", problems)
    if not cleaned:
        return household
    with transaction(db):
        columns = households.personal_columns(household["code"], **cleaned)
        db["households"].update(household["id"], columns | {"updated_at": now_iso()})
        audit.record(
            db, "household.updated", f"household:{household['code']}", {"fields": sorted(cleaned)}
        )
    return first(db, "SELECT * FROM households WHERE id = ?", [household["id"]])


def mark_left(db: Database, household: dict[str, Any], reason: str) -> dict[str, Any]:
    """The household moved away: it stays on record (and keeps what it is owed), inactive."""
    with transaction(db):
        db["households"].update(household["id"], {"status": "inactive", "updated_at": now_iso()})
        audit.record(
            db, "household.left", f"household:{household['code']}", {"reason": reason[:200]}
        )
    return first(db, "SELECT * FROM households WHERE id = ?", [household["id"]])


def set_village_location(
    db: Database, village: dict[str, Any], latitude: float, longitude: float
) -> dict[str, Any]:
    """Place a village on the county map (its centre, in WGS 84 degrees)."""
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ApiError(422, "validation_failed", "经纬度超出范围。")
    with transaction(db):
        db["villages"].update(village["id"], {"latitude": latitude, "longitude": longitude})
        audit.record(
            db,
            "village.located",
            f"village:{village['code']}",
            {"latitude": latitude, "longitude": longitude},
        )
    return first(db, "SELECT * FROM villages WHERE id = ?", [village["id"]])
