"""Households (一户一码): their codes, encrypted personal data and masked views."""

from typing import Any

from flask import Blueprint, current_app, g, jsonify
from sqlite_utils import Database

from server import audit, pii
from server.access import allow
from server.clock import now_iso
from server.db import first, get_db, transaction
from server.errors import ApiError
from server.validation import json_body
from village_kits import codes
from village_kits.personal_data import (
    is_bank_card,
    is_id_number,
    is_mobile_phone,
    normalise_digits,
)


def code_secret(county_code: str) -> bytes:
    return codes.county_secret(bytes.fromhex(current_app.config["CODE_KEY"]), county_code)


def get_household(code: str) -> dict[str, Any] | None:
    """The household with a valid code, or None for unknown or forged codes."""
    try:
        village_code, _, _ = codes.parse_code(code)
        code = codes.verify_code(code_secret(village_code[:6]), code)
    except codes.InvalidCode:
        return None
    return first(get_db(), "SELECT * FROM households WHERE code = ?", [code])


def check_personal_data(data: dict[str, Any]) -> list[dict[str, str]]:
    """Problems with the phone, ID and bank numbers, one per field."""
    checks = {
        "phone": (is_mobile_phone, "not an 11-digit mobile number"),
        "id_number": (is_id_number, "not an 18-character ID number with a valid check"),
        "bank_account": (is_bank_card, "not a bank card number (Luhn check fails)"),
    }
    return [
        {"field": field, "problem": problem}
        for field, (valid, problem) in checks.items()
        if data.get(field) is not None and not valid(data[field])
    ]


def create_household(
    db: Database,
    village: dict[str, Any],
    *,
    head_name: str,
    phone: str | None = None,
    id_number: str | None = None,
    bank_account: str | None = None,
    consent_date: str | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """Register a household, encrypting its personal data; returns the stored row."""
    problems = check_personal_data(
        {"phone": phone, "id_number": id_number, "bank_account": bank_account}
    )
    if problems:
        raise ApiError(422, "validation_failed", "Personal data failed its checks.", problems)
    phone, id_number, bank_account = (
        normalise_digits(v).upper() if v else None for v in (phone, id_number, bank_account)
    )
    id_index = pii.blind_index(id_number, "id_number") if id_number else None
    if id_index and first(db, "SELECT 1 FROM households WHERE id_number_index = ?", [id_index]):
        raise ApiError(409, "conflict", "A household with this ID number is registered already.")
    with transaction(db):
        if seq is None:
            seq = db.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM households WHERE village_id = ?",
                [village["id"]],
            ).fetchone()[0]
        code = codes.make_code(code_secret(village["code"][:6]), village["code"], seq)
        now = now_iso()
        db["households"].insert(
            {
                "village_id": village["id"],
                "seq": seq,
                "code": code,
                "head_name_enc": pii.encrypt(head_name, f"household:{code}:head_name"),
                "phone_enc": pii.encrypt(phone, f"household:{code}:phone"),
                "id_number_enc": pii.encrypt(id_number, f"household:{code}:id_number"),
                "id_number_index": id_index,
                "bank_account_enc": pii.encrypt(bank_account, f"household:{code}:bank_account"),
                "head_name_masked": pii.mask_name(head_name),
                "phone_masked": pii.mask_tail(phone),
                "bank_account_masked": pii.mask_tail(bank_account),
                "consent_given": int(consent_date is not None),
                "consent_date": consent_date,
                "created_at": now,
                "updated_at": now,
            }
        )
        audit.record(db, "household.created", f"household:{code}", {"village": village["code"]})
    return first(db, "SELECT * FROM households WHERE code = ?", [code])


def reveal(db: Database, household: dict[str, Any], field: str, purpose: str) -> str | None:
    """Decrypt one personal field for a stated purpose; every access is audited."""
    value = pii.decrypt(household[f"{field}_enc"], f"household:{household['code']}:{field}")
    audit.record(
        db, "pii.revealed", f"household:{household['code']}", {"field": field, "purpose": purpose}
    )
    return value


def tree_count(db: Database, household_id: int) -> int:
    return db.execute(
        "SELECT count(*) FROM trees WHERE household_id = ?", [household_id]
    ).fetchone()[0]


def masked_view(row: dict[str, Any], village_code: str) -> dict[str, Any]:
    """A household as staff see it: personal data masked, never decrypted."""
    return {
        "code": row["code"],
        "village_code": village_code,
        "seq": row["seq"],
        "head_name": row["head_name_masked"],
        "phone": row["phone_masked"],
        "bank_account": row["bank_account_masked"],
        "consent_given": bool(row["consent_given"]),
        "consent_date": row["consent_date"],
        "status": row["status"],
        "trees": row.get("trees"),
    }


NEW_HOUSEHOLD = {
    "type": "object",
    "additionalProperties": False,
    "required": ["head_name"],
    "properties": {
        "head_name": {"type": "string", "minLength": 1, "maxLength": 50},
        "phone": {"type": "string", "maxLength": 20},
        "id_number": {"type": "string", "maxLength": 25},
        "bank_account": {"type": "string", "maxLength": 30},
        "consent_date": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
    "example": {
        "head_name": "示例户主",
        "phone": "17000000042",
        "bank_account": "6200000000000000000",
        "consent_date": "2026-03-01",
    },
}

bp = Blueprint("households", __name__, url_prefix="/api/v1")


@bp.get("/villages/<village_code>/households")
@allow("admin", "bureau", "verifier", "measurer", scope="village")
def village_households(village_code: str):
    """A village's households, personal data masked."""
    rows = get_db().query(
        """SELECT h.*, (SELECT count(*) FROM trees t WHERE t.household_id = h.id) AS trees
           FROM households h WHERE h.village_id = ? ORDER BY h.seq""",
        [g.village["id"]],
    )
    return jsonify(households=[masked_view(row, village_code) for row in rows])


@bp.post("/villages/<village_code>/households")
@allow("admin", scope="village", body=NEW_HOUSEHOLD)
def add_household(village_code: str):
    """Register one household (the roster import registers many at once)."""
    data = json_body(NEW_HOUSEHOLD)
    row = create_household(get_db(), g.village, **data)
    return jsonify(household=masked_view(row | {"trees": 0}, village_code)), 201


@bp.get("/households/<household_code>")
@allow("admin", "bureau", "verifier", "measurer", scope="household")
def household(household_code: str):
    """One household, personal data masked."""
    row = g.household | {"trees": tree_count(get_db(), g.household["id"])}
    return jsonify(household=masked_view(row, g.village["code"]))
